"""``POST /containers/create``: the create body checked and merged (:mod:`.config`, pure), then
what it names looked up (image, network, peers, volumes, exec driver) and the new container's
writable layer, network settings and record made."""
from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import socket
import time
from typing import Any

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host.timefmt import rfc3339

from .. import links as linksmod, names, resources as resourcesmod, seccomp as seccompmod
from .. import platforms, spec as specmod, storageopt
from ..networks import parse_extra_hosts
from . import config
from .base import ServiceBase
from .config import ZERO_TIME


class Create(ServiceBase):
    async def create(self, body: dict[str, Any], name: str | None,
                     platform: str | None = None) -> dict[str, Any]:
        """``body``: a create body checked by :class:`dockyard.core.schema.ContainerCreate`;
        ``platform``: the one its image must be for (a 404 when it is not, as dockerd)."""
        platforms.check(self.images, body.get("Image"), platform)
        image_name = body.get("Image")
        if not image_name:
            raise InvalidParameter("Config.Image must be given: no image specified")
        host = body.get("HostConfig") or {}
        if body.get("Runtime") and not host.get("Runtime"):
            # a top-level Runtime is docker-py's create_container(runtime=): applied, not dropped
            host = {**host, "Runtime": body["Runtime"]}
        full = self._new_name(name)
        image_id = self.images.resolve(image_name)
        img_cfg = (self.images.config(image_id).get("config") or {})
        network_mode, network, net_peer = self._network_of(body, host)
        cid = secrets.token_hex(32)
        cfg = config.container_config(body, img_cfg, self._default_hostname(cid, host, network, net_peer))
        args = specmod.command(cfg)
        host_cfg, warnings = self._host_config(host, network, network_mode, full)
        wanted = {**(img_cfg.get("Volumes") or {}), **(body.get("Volumes") or {})}
        mounts = await asyncio.to_thread(self.d.volumes.mounts_for, host_cfg, wanted)  # plugins
        mounts = self.d.volumes.volumes_from(host_cfg.get("VolumesFrom"), mounts, self._peer)
        cdir = await self._create_layer(cid, image_id, host_cfg)
        now = time.time()
        c: dict[str, Any] = {
            "Id": cid, "Created": rfc3339(now), "Path": args[0], "Args": args[1:],
            "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
            "Image": image_id, "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
            "HostnamePath": os.path.join(cdir, "hostname"), "HostsPath": os.path.join(cdir, "hosts"),
            "LogPath": os.path.join(cdir, f"{cid}-json.log"), "Name": full, "RestartCount": 0,
            "Driver": self.graph.name, "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
            "AppArmorProfile": "", "ExecIDs": None, "HostConfig": host_cfg,
            "GraphDriver": {"Name": self.graph.name, "Data": self.graph.metadata(cid)},
            "Mounts": mounts, "Config": cfg,
            "NetworkSettings": {},
            "_created": now, "_network": network["Name"] if network else "" if net_peer else network_mode,
            self.d.runtimes.record_key: host_cfg["Runtime"],
        }
        self._configure_network(c, network, net_peer, body)
        self.save(c)
        self.d.emit("dockyard_container_created", container=self.public(c))
        self._event("create", c)
        return {"Id": cid, "Warnings": warnings}

    def _new_name(self, name: str | None) -> str:
        """The new container's recorded name: the one given, unless another holds it, or a
        random one no container holds."""
        if not name:
            return "/" + names.random_name({c["Name"][1:] for c in self._cache.values()})
        full = config.full_name(name)
        self._check_name_free(full)
        return full

    def _network_of(self, body: dict[str, Any], host: dict[str, Any]
                    ) -> tuple[str, dict[str, Any] | None, dict[str, Any] | None]:
        """``(network mode as recorded, network, peer)``: the network it joins, or the
        container whose network namespace it shares (``container:<name>``, recorded by id)."""
        network_mode = host.get("NetworkMode") or "default"
        if network_mode.startswith("container:"):
            net_peer = self._peer(network_mode[len("container:"):], "join the network namespace of")
            config.check_net_peer_options(body, host)
            return "container:" + net_peer["Id"], None, net_peer
        # None: a user-defined network that does not exist yet, looked up at start
        return network_mode, self.d.networks.resolve_mode(network_mode), None

    def _default_hostname(self, cid: str, host: dict[str, Any], network: dict[str, Any] | None,
                          net_peer: dict[str, Any] | None) -> str:
        # as dockerd: the host's name with the host's network (or UTS namespace)
        if host.get("UTSMode") == "host" or (
                network is not None and self.d.networks.driver_of(network["Name"]).namespace == "host"):
            return socket.gethostname()
        return net_peer["Config"]["Hostname"] if net_peer else cid[:12]

    def _host_config(self, host: dict[str, Any], network: dict[str, Any] | None, network_mode: str,
                     full: str) -> tuple[dict[str, Any], list[str]]:
        """The HostConfig the container records, checked, and the warnings dockerd gives."""
        if "SecurityOpt" in host:  # a seccomp profile named by path is read and kept
            host["SecurityOpt"] = seccompmod.normalize_security_opts(host["SecurityOpt"])
            specmod.security_options(host["SecurityOpt"])
        parse_extra_hosts(host.get("ExtraHosts"))
        links = self._links(host, network, full)
        runtime = self.d.runtimes.choose(host.get("Runtime") or "")
        config.check_host_options(host, not self.d.id_map.is_identity, self._peer)
        host_cfg = config.host_config(host, network_mode, links, runtime)
        specmod.check_host_config(host_cfg)
        warnings = resourcesmod.adapt(host_cfg, self.d.runtimes.drivers[runtime], self.graph)
        host_cfg["LogConfig"] = config.log_config(host.get("LogConfig") or {}, self.d.config)
        host_cfg["RestartPolicy"] = config.restart_policy(host_cfg)
        return host_cfg, warnings

    def _links(self, host: dict[str, Any], network: dict[str, Any] | None, full: str) -> list[str]:
        """``--link``s as dockerd shows them (``/child:/parent/alias``); none with host networking."""
        links = []
        for link in host.get("Links") or ():
            peer_name, alias = linksmod.parse(link)
            child = self._peer(peer_name, "link to")
            if network is not None and self.d.networks.driver_of(network["Name"]).namespace == "host" \
                    or child["HostConfig"].get("NetworkMode") == "host":
                raise InvalidParameter("conflicting options: host type networking can't be used "
                                       "with links. This would result in undefined behavior")
            links.append(linksmod.shown(child, full, alias))
        return links

    async def _create_layer(self, cid: str, image_id: str, host_cfg: dict[str, Any]) -> str:
        """The container's directory and writable layer (``StorageOpt`` applied); returns the
        directory."""
        cdir = os.path.join(self.root, cid)
        os.makedirs(cdir, exist_ok=True)
        top = self.images.top_cache_id(image_id)
        try:
            self._check_not_migrating()
            await asyncio.to_thread(storageopt.create_rw, self.graph, cid, top, host_cfg)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        return cdir

    def _configure_network(self, c: dict[str, Any], network: dict[str, Any] | None,
                           net_peer: dict[str, Any] | None, body: dict[str, Any]) -> None:
        if net_peer is not None:
            # the peer's network namespace and its /etc files, as dockerd
            c["_networks"] = {}
            c.update({k: net_peer[k] for k in ("ResolvConfPath", "HostnamePath", "HostsPath")})
            c["NetworkSettings"] = self.d.networks.settings_for(c)
        else:
            self.d.networks.configure(c, network, body)
