"""dockyard's network-driver conformance suite, run against this driver: the one line."""
from dockyard.hookspecs.conformance.netdriver import netdriver_suite
from dockyard_net_macvlan import MacvlanDriver

TestMacvlanConformance = netdriver_suite(MacvlanDriver)
