"""Network records (the inspect document, as JSON) and IPAM: one row per address in use."""
from __future__ import annotations

import json
import sqlite3
from typing import Any, Iterable

from .db import Db


class NetworkRepo(Db):
    def networks(self) -> dict[str, dict[str, Any]]:
        """Name -> the network's document."""
        return {r["name"]: json.loads(r["data"]) for r in self._q("SELECT name, data FROM networks")}

    def add_network(self, net: dict[str, Any]) -> None:
        self._x("INSERT INTO networks(id, name, driver, data) VALUES(?,?,?,?)",
               net["Id"], net["Name"], net["Driver"], json.dumps(net))

    def save_network(self, net: dict[str, Any]) -> None:
        """Record ``net``, or replace the document of the network with its id."""
        self._x("INSERT INTO networks(id, name, driver, data) VALUES(?,?,?,?) "
               "ON CONFLICT(id) DO UPDATE SET data=excluded.data",
               net["Id"], net["Name"], net["Driver"], json.dumps(net))

    def delete_network(self, network_id: str) -> None:
        self._x("DELETE FROM networks WHERE id=?", network_id)


class IpamRepo(Db):
    def reserve_address(self, network_id: str, address: str, owner: str) -> bool:
        """Record ``address`` as ``owner``'s; False when it is in use already."""
        try:
            self._x("INSERT INTO ipam(network_id, address, owner) VALUES(?,?,?)",
                   network_id, address, owner)
        except sqlite3.IntegrityError:
            return False
        return True

    def claim_first_free(self, network_id: str, owner: str, candidates: Iterable[str],
                         taken: set[str]) -> str | None:
        """In one transaction: record for ``owner`` the first of ``candidates`` (read lazily)
        neither in use on the network nor in ``taken``; None when there is none."""
        with self._tx() as db:
            used = {r[0] for r in db.execute("SELECT address FROM ipam WHERE network_id=?",
                                             (network_id,))} | taken
            for text in candidates:
                if text not in used:
                    db.execute("INSERT INTO ipam(network_id, address, owner) VALUES(?,?,?)",
                               (network_id, text, owner))
                    return text
        return None

    def release_address(self, network_id: str, address: str) -> None:
        self._x("DELETE FROM ipam WHERE network_id=? AND address=?", network_id, address)

    def release_owner(self, owner: str) -> None:
        self._x("DELETE FROM ipam WHERE owner=?", owner)

    def release_network(self, network_id: str) -> None:
        self._x("DELETE FROM ipam WHERE network_id=?", network_id)

    def addresses_in_use(self, network_id: str) -> dict[str, str]:
        """Address -> owner, on one network."""
        return {r["address"]: r["owner"]
                for r in self._q("SELECT address, owner FROM ipam WHERE network_id=?", network_id)}

    def address_owners(self) -> set[str]:
        return {r["owner"] for r in self._q("SELECT DISTINCT owner FROM ipam")}
