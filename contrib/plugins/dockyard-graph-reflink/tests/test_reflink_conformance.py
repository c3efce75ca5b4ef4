"""dockyard's graph-driver conformance suite, run against this driver: the one line (the suite
puts each home on a loop-mounted btrfs, the driver's ``required_fs``)."""
from dockyard.hookspecs.conformance.graphdriver import graphdriver_suite
from dockyard_graph_reflink import ReflinkDriver

TestReflinkConformance = graphdriver_suite(ReflinkDriver)
