"""Resource cases of the exec-driver conformance suite (mixed into ``ExecDriverSuite``).

A driver applies each resource of ``linux.resources`` or names it in
:meth:`~dockyard.hookspecs.execdriver.ExecDriver.unsupported_resources` (the daemon then refuses
a container that sets it): never runs a container without a limit it asked for. Checked here
for the real-time CPU budget (``cpu.realtimePeriod``/``realtimeRuntime``, cgroup v1's
``cpu.rt_period_us``/``cpu.rt_runtime_us``), with the ``io.dockyard.cpu-rt-runtime`` annotation
giving the container's parent cgroup a budget first.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from .execdriver import Env

CGROUP_ROOT = "/sys/fs/cgroup"


def _remove_parent(name: str) -> None:
    """The suite's parent cgroup, in every hierarchy (the driver removed its child)."""
    for entry in os.listdir(CGROUP_ROOT):
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(CGROUP_ROOT, entry, name))


def _read(path: str) -> str:
    with open(path) as f:
        return f.read().strip()


class ResourceCases:
    """Mixed into the suite: uses its ``env`` fixture."""

    def test_realtime_budget_is_applied_or_declared_unsupported(self, env: Env) -> None:
        async def main() -> None:
            d = env.driver()
            res = {"cpu": {"realtimePeriod": 100000, "realtimeRuntime": 1000}}
            missing = d.unsupported_resources(res)
            if missing:
                assert set(missing) <= {"cpu.realtimePeriod", "cpu.realtimeRuntime"}, missing
                return
            parent, cid = "dyconf-rt-" + uuid.uuid4().hex[:8], env.cid()
            spec = env.spec(["sleep", "60"], resources=res,
                            linux={"cgroupsPath": f"{parent}/{cid}"})
            spec["annotations"] = {"io.dockyard.cpu-rt-runtime": "20000"}
            try:
                await d.create(cid, spec, log_path=env.log(cid))
                await d.start(cid)
                cpu = os.path.join(CGROUP_ROOT, "cpu", parent)
                assert _read(f"{cpu}/cpu.rt_runtime_us") == "20000"
                assert _read(f"{cpu}/{cid}/cpu.rt_period_us") == "100000"
                assert _read(f"{cpu}/{cid}/cpu.rt_runtime_us") == "1000"
                await d.delete(cid)
            finally:
                with contextlib.suppress(Exception):
                    await d.delete(cid)
                _remove_parent(parent)

        asyncio.run(main())
