"""The network-driver conformance suite, run for every installed network driver (none, host,
bridge), plus checks of the bridge driver's own promises."""
from __future__ import annotations

from dockyard.hookspecs.conformance.netdriver import (installed_netdriver_suite,
                                                      installed_netdrivers)

TestInstalledNetDrivers = installed_netdriver_suite()


def test_builtin_drivers_are_installed() -> None:
    assert {"none", "host", "bridge"} <= set(installed_netdrivers())
