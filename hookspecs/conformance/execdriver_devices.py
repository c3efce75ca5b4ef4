"""Device cases of the exec-driver conformance suite (mixed into ``ExecDriverSuite``).

What every exec driver must do with the spec's devices: apply ``linux.resources.devices`` (the
device cgroup: a v1 ``devices`` cgroup, a v2 eBPF program, or both) before the process runs, and
create ``linux.devices`` in the container's ``/dev`` with their numbers, modes and owners — also
in a user namespace, where ``mknod`` is not allowed. The tests need only ``/dev/null``,
``/dev/zero`` (1:5), ``/dev/full`` (1:7) and ``/dev/kmsg`` (1:11, opened for writing and closed:
nothing is written) on the host.
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:  # pragma: no cover
    from .execdriver import Env

DENIED = "Operation not permitted"
DOCKER_LIKE = [
    {"allow": False, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},   # /dev/null
    {"allow": True, "type": "c", "major": -1, "minor": -1, "access": "m"},   # mknod of any char
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},     # zero: read only
]
MYZERO = {"path": "/dev/myzero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o640,
          "uid": 0, "gid": 0}


def _lines(out: bytes) -> list[str]:
    return [line.strip() for line in out.decode(errors="replace").splitlines() if line.strip()]


class DeviceCases:
    """Mixed into the suite: uses its ``env`` fixture."""

    def test_device_cgroup_confines_the_container(self, env: Env) -> None:
        """A deny-all list with a few allow rules: what it names works (``r`` only: reads do,
        writes do not), a node the container makes of anything else cannot be opened, and mknod
        follows the ``m`` rules."""
        script = (
            "echo x > /dev/null && echo null-ok; "
            "head -c 4 /dev/myzero | wc -c; "
            "(echo x > /dev/myzero) 2>&1; "
            "stat -c '%a %t:%T' /dev/myzero; "
            "mknod /dev/t-full c 1 7 && echo mknod-c-ok; "
            "(exec 3</dev/t-full) 2>&1; "
            "mknod /dev/t-kmsg c 1 11 && (exec 3>/dev/t-kmsg) 2>&1; "
            "mknod /dev/t-blk b 7 0 2>&1; true")

        async def main() -> None:
            status, out, err = await env.run(
                env.driver(), ["sh", "-c", script], secure=True,
                linux={"devices": [MYZERO], "resources": {"devices": DOCKER_LIKE}})
            lines = _lines(out)
            assert status.exit_code == 0, (out, err)
            assert lines[0] == "null-ok" and lines[1] == "4", lines
            assert DENIED in lines[2] and "myzero" in lines[2], lines
            assert lines[3] == "640 1:5", lines
            assert lines[4] == "mknod-c-ok", lines
            assert DENIED in lines[5] and "t-full" in lines[5], lines
            assert DENIED in lines[6] and "t-kmsg" in lines[6], lines
            assert DENIED in lines[7] and "t-blk" in lines[7], lines

        asyncio.run(main())

    def test_allow_all_device_cgroup(self, env: Env) -> None:
        """``[{"allow": true, "access": "rwm"}]`` (``--privileged``) opens what the deny-all list
        closed."""
        script = "mknod /dev/t-kmsg c 1 11 && (exec 3>/dev/t-kmsg) && echo kmsg-ok"

        async def main() -> None:
            status, out, err = await env.run(env.driver(), ["sh", "-c", script], secure=True,
                                             linux={"resources": {"devices": [
                                                 {"allow": True, "access": "rwm"}]}})
            assert (status.exit_code, _lines(out)) == (0, ["kmsg-ok"]), (out, err)

        asyncio.run(main())

    def test_device_nodes_in_a_user_namespace(self, env: Env) -> None:
        """``linux.devices`` in a new user namespace (no mknod there): the node is still there
        and works within the rules."""
        async def main() -> None:
            from .execdriver import USERNS_BASE
            d = env.driver()
            if not type(d).user_namespaces:
                pytest.skip(f"{type(d).name} declares no user-namespace support")
            maps = [{"containerID": 0, "hostID": USERNS_BASE, "size": 65536}]
            status, out, err = await env.run(
                d, ["sh", "-c", "head -c 3 /dev/myzero | wc -c; (echo x > /dev/myzero) 2>&1; "
                                "echo x > /dev/null && echo null-ok"],
                secure=True, namespaces=("pid", "network", "mount", "ipc", "uts", "user"),
                linux={"devices": [MYZERO], "resources": {"devices": DOCKER_LIKE},
                       "uidMappings": maps, "gidMappings": maps})
            lines = _lines(out)
            assert status.exit_code == 0, (out, err)
            assert lines[0] == "3" and lines[2] == "null-ok", lines
            assert "myzero" in lines[1] and ("denied" in lines[1] or DENIED in lines[1]), lines

        asyncio.run(main())

