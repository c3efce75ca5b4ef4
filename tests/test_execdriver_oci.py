"""The OCI-runtime exec drivers (runc, crun) against the exec-driver conformance suite."""
from __future__ import annotations

from dockyard.hookspecs.conformance.execdriver import execdriver_suite
from dockyard.plugins.execdrivers.oci import CrunDriver, RuncDriver

TestRuncConformance = execdriver_suite(RuncDriver)
TestCrunConformance = execdriver_suite(CrunDriver)
