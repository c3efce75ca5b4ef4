"""pytest plugin (entry point ``pytest11: dockyard_conformance``) for dockyard's conformance suites.

Loaded into every pytest run of an environment where dockyard is installed, so it only *adds*:
command-line options. It defines no fixtures and collects no tests by itself; the
suites (e.g. :mod:`dockyard.hookspecs.conformance.graphdriver`) run where a test module asks for
them. Every suite also works with this plugin disabled (``-p no:dockyard_conformance``): options
then take their defaults.

Options:

``--dockyard-graphdriver NAME``
    run the installed-drivers graph-driver suite for NAME only (repeatable; default: all).
``--dockyard-netdriver NAME``
    the same for the network-driver suite.
``--dockyard-basetemp DIR``
    make each test's fresh driver home under DIR (default: the system temp dir; also from the
    environment variable ``DOCKYARD_CONFORMANCE_BASETEMP``). Use it when a driver needs a given
    file system (btrfs, xfs with d_type...).
"""
from __future__ import annotations

from typing import Any


def pytest_addoption(parser: Any) -> None:
    group = parser.getgroup("dockyard-conformance", "dockyard driver conformance suites")
    group.addoption("--dockyard-graphdriver", action="append", default=None,
                    dest="dockyard_graphdriver", metavar="NAME",
                    help="run the graph-driver conformance suite for this installed driver only "
                         "(repeatable; default: all installed)")
    group.addoption("--dockyard-netdriver", action="append", default=None,
                    dest="dockyard_netdriver", metavar="NAME",
                    help="run the network-driver conformance suite for this installed driver only "
                         "(repeatable; default: all installed)")
    group.addoption("--dockyard-basetemp", action="store", default=None,
                    dest="dockyard_basetemp", metavar="DIR",
                    help="directory under which each conformance test gets a fresh driver home")

