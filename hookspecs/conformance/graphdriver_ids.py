"""Conformance cases for :meth:`GraphDriver.ids` (listing the layers a driver holds), part of
the graph-driver suite (:class:`~dockyard.hookspecs.conformance.graphdriver.GraphDriverSuite`
inherits them). A driver keeping the default ``ids`` (NotImplementedError) skips them."""
from __future__ import annotations

from typing import Any

import pytest


def _ids(driver: Any) -> list[str]:
    try:
        return sorted(driver.ids())
    except NotImplementedError as e:
        pytest.skip(f"the driver cannot list its layers: {e}")


class LayerListingSuite:
    def test_ids_lists_whole_layers(self, env: Any) -> None:
        d = env.driver
        assert _ids(d) == []
        d.create("base", None)
        d.create("child", "base")
        d.create_rw("ctr", "child")
        assert _ids(d) == ["base", "child", "ctr"]
        d.get("ctr")  # mounted or not, it is the same layer
        try:
            assert _ids(d) == ["base", "child", "ctr"]
        finally:
            d.put("ctr")
        d.remove("ctr")
        assert _ids(d) == ["base", "child"]

    def test_ids_survive_a_restart_and_remove_takes_them(self, env: Any, graphdriver_factory: Any) -> None:
        """What a killed daemon made but never recorded is listed by a new driver on the same
        home, and ``remove`` takes it away (the daemon's start-up reconcile does this)."""
        d = env.driver
        d.create("kept", None)
        d.create_rw("orphan", "kept")
        d.get("orphan")  # then "killed": no put, no cleanup
        again = graphdriver_factory(env.home)
        try:
            assert _ids(again) == ["kept", "orphan"]
            again.remove("orphan")
            assert _ids(again) == ["kept"] and not again.exists("orphan")
            assert again.exists("kept")
        finally:
            again.cleanup()
