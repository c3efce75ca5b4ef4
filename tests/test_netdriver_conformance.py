"""The network-driver conformance suite, run for every installed network driver (none, host,
bridge), plus checks of the bridge driver's own promises."""
from __future__ import annotations

from dockyard.hookspecs.conformance.netdriver import (installed_netdriver_suite,
                                                      installed_netdrivers)

TestInstalledNetDrivers = installed_netdriver_suite()


def test_builtin_drivers_are_installed() -> None:
    assert {"none", "host", "bridge"} <= set(installed_netdrivers())


def test_bridge_a_network_that_fails_leaves_no_bridge(tmp_path) -> None:
    """A bridge the driver made for a network whose set-up then fails is removed with the
    failure (before, it stayed: untagged, so no restore, close or clean-up knew it as ours).
    The kernel's own refusal is the failure: a multicast IPv6 gateway. A bad MTU is a 400
    before anything is made."""
    import os
    import secrets
    import subprocess

    import pytest

    from dockyard.hookspecs.errors import InvalidParameter
    from dockyard.plugins.netdrivers.bridge import BridgeDriver

    if os.geteuid() != 0:
        pytest.skip("needs root")
    drv = BridgeDriver(str(tmp_path / "home"), {"bridge": "dyf" + secrets.token_hex(4),
                                                "iptables": "false", "ip-forward": "false"})
    nid = secrets.token_hex(32)
    name = "br-" + nid[:12]
    opts = {"Subnet": "10.213.77.0/24", "Gateway": "10.213.77.1", "Options": {},
            "IPv6Subnet": "ff05:4d3::/64", "IPv6Gateway": "ff05:4d3::1"}
    try:
        with pytest.raises(Exception, match="Cannot assign requested address"):
            drv.create_network(nid, opts)
        assert nid not in drv.nets
        with pytest.raises(InvalidParameter, match="invalid MTU number: 100000"):
            drv.create_network(nid, {**opts, "Options": {"com.docker.network.driver.mtu": "100000"}})
        links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
        assert f" {name}:" not in links and f" {name}@" not in links
    finally:
        subprocess.run(["ip", "link", "del", name], capture_output=True)
        drv.close()
