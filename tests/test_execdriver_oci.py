"""The OCI-runtime exec drivers (runc, crun) against the exec-driver conformance suite."""
from __future__ import annotations

import pytest

from dockyard.hookspecs.conformance.execdriver import execdriver_suite
from dockyard.hookspecs.errors import DriverNotSupported
from dockyard.plugins.execdrivers.oci import CrunDriver, RuncDriver

TestRuncConformance = execdriver_suite(RuncDriver)
TestCrunConformance = execdriver_suite(CrunDriver)


def test_a_missing_runtime_binary_is_not_supported_naming_the_package(tmp_path) -> None:
    for cls, package in ((RuncDriver, "runc"), (CrunDriver, "crun")):
        missing = str(tmp_path / f"no-{package}")
        with pytest.raises(DriverNotSupported) as e:
            cls(str(tmp_path / package), {"path": missing})
        assert missing in e.value.reason and f"apt-get install {package}" in e.value.reason
    assert not (tmp_path / "runc").exists()  # nothing made for a driver that cannot run
