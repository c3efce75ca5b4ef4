"""Device cgroup rules: Docker's syntax, the v1 semantics, and the same decisions taken for real by
the kernel — through a v1 ``devices`` cgroup written from the rules, and through the eBPF program
generated from them attached to a cgroup2 directory (no controller needed) — compared, request by
request, with the reference decision."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest

from dockyard.core import devices as dockerdevs
from dockyard.hookspecs.host import devicebpf
from dockyard.hookspecs.host.devices import DeviceRules, parse_rule
from dockyard.hookspecs.errors import InvalidParameter

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root")


def rule(allow: bool, text: str) -> dict:
    return {**parse_rule(text), "allow": allow}


# -- syntax and semantics -------------------------------------------------------------------------
def test_parse_rule_takes_dockers_syntax_only() -> None:
    assert parse_rule("c 1:11 r") == {"allow": True, "type": "c", "major": 1, "minor": 11,
                                      "access": "r"}
    assert parse_rule("b *:* mw") == {"allow": True, "type": "b", "major": -1, "minor": -1,
                                      "access": "wm"}
    assert parse_rule("a *:* rwm")["type"] == "a"
    for bad in ("c 1:11", "x 1:1 r", "c 1:1 rx", "c 1 r", " c 1:1 r", "c 1:1 rwmr", "c -1:1 r",
                "c 1:1  r", "c 4096:1 r", "", "a"):
        with pytest.raises(InvalidParameter) as ei:
            parse_rule(bad)
        assert f"invalid device cgroup rule format: '{bad}'" in ei.value.message


def test_docker_defaults_decide_as_dockerd_and_runc() -> None:
    rules = DeviceRules(dockerdevs.DOCKER_RULES + dockerdevs.RUNTIME_RULES)
    assert not rules.default_allow
    for typ, major, minor in (("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9),
                              ("c", 5, 0), ("c", 5, 1), ("c", 5, 2), ("c", 136, 7),
                              ("c", 10, 200)):
        assert rules.allows(typ, major, minor, "rwm"), (typ, major, minor)
    for typ, major, minor in (("c", 1, 11), ("c", 1, 1), ("c", 10, 229), ("b", 8, 0),
                              ("b", 7, 0), ("c", 4, 1)):
        assert not rules.allows(typ, major, minor, "r"), (typ, major, minor)
        assert not rules.allows(typ, major, minor, "w"), (typ, major, minor)
        assert rules.allows(typ, major, minor, "m"), (typ, major, minor)  # mknod: yes
    writes = rules.v1_writes()
    assert writes[0] == ("devices.deny", "a")
    assert ("devices.allow", "c 136:* rwm") in writes and ("devices.allow", "b *:* m") in writes
    assert len(writes) == 1 + len(rules.exceptions)


def test_rule_semantics() -> None:
    # exceptions merge; a same-verdict rule removes access from its exact exception
    r = DeviceRules([rule(False, "a *:* rwm"), rule(True, "c 1:3 r"), rule(True, "c 1:3 w"),
                     rule(True, "c 1:5 rwm"), rule(False, "c 1:5 w")])
    assert r.exceptions == {("c", 1, 3): "rw", ("c", 1, 5): "rm"}
    assert r.allows("c", 1, 3, "rw") and not r.allows("c", 1, 3, "m")
    assert r.allows("c", 1, 5, "r") and not r.allows("c", 1, 5, "rw")
    # 'a' resets everything, whatever else the rule says
    r.apply(rule(True, "a 1:3 r"))
    assert r.allows_all and r.v1_writes() == [("devices.allow", "a")]
    # allow by default: a request overlapping a deny exception is refused
    r.apply(rule(False, "c 1:11 w"))
    assert not r.allows("c", 1, 11, "w") and not r.allows("c", 1, 11, "rw")
    assert r.allows("c", 1, 11, "r")
    assert r.v1_writes() == [("devices.allow", "a"), ("devices.deny", "c 1:11 w")]
    # wildcards: a number of -1 (or missing) is *
    r = DeviceRules([{"allow": False}, {"allow": True, "type": "c", "major": 1, "access": "r"}])
    assert r.allows("c", 1, 99, "r") and not r.allows("c", 2, 1, "r")
    # a hole in a wildcard exception cannot be made (v1 would silently keep the access)
    with pytest.raises(InvalidParameter, match="wildcard"):
        DeviceRules([rule(False, "a *:* rwm"), rule(True, "c 1:* r"), rule(False, "c 1:3 r")])
    for bad in ({"allow": "yes"}, {"allow": True, "type": "x"}, {"allow": True, "access": "q"},
                {"allow": True, "type": "c", "major": 99999}):
        with pytest.raises(InvalidParameter):
            DeviceRules([bad])


# -- the kernel decides: v1 devices cgroup and cgroup2 eBPF program ------------------------------
#: nodes probed: (type, major, minor); open of each answers EPERM only when the cgroup refuses
#: (1:11 is /dev/kmsg, opened and closed: nothing is written; block 7:N loop, 8:N sd)
NODES = [("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 11), ("c", 10, 200), ("b", 7, 0),
         ("b", 8, 240)]
ACCESSES = ("r", "w", "rw", "m")
RULE_SETS = {
    "docker-default": dockerdevs.DOCKER_RULES + dockerdevs.RUNTIME_RULES,
    "allow-list": [rule(False, "a *:* rwm"), rule(True, "c 1:5 r"), rule(True, "c 1:* w"),
                   rule(True, "c 1:7 rm"), rule(True, "b 7:* r"), rule(True, "b *:* m")],
    "deny-list": [rule(True, "a *:* rwm"), rule(False, "c 1:11 w"), rule(False, "c 1:5 rw"),
                  rule(False, "b *:* m"), rule(False, "c 1:7 m"), rule(False, "b 8:* r")],
}
PROBE = r"""
import errno, os, sys
procs, nodes_dir = sys.argv[1], sys.argv[2]
with open(procs, "w") as f:
    f.write(str(os.getpid()))
out = []
for name in sorted(os.listdir(nodes_dir)):
    typ, major, minor = name.split("-")
    path = os.path.join(nodes_dir, name)
    for access, flags in (("r", os.O_RDONLY), ("w", os.O_WRONLY), ("rw", os.O_RDWR)):
        try:
            os.close(os.open(path, flags | os.O_NONBLOCK))
            out.append(f"{name} {access} 1")
        except OSError as e:
            out.append(f"{name} {access} {0 if e.errno == errno.EPERM else 1}")
    fresh = path + ".m"
    mode = (0o060000 if typ == "b" else 0o020000) | 0o600
    try:
        os.mknod(fresh, mode, os.makedev(int(major), int(minor)))
        os.unlink(fresh)
        out.append(f"{name} m 1")
    except OSError as e:
        out.append(f"{name} m {0 if e.errno == errno.EPERM else 1}")
print("\n".join(out))
"""


def _cgroup_mounts() -> dict[str, str]:
    """fs type -> mount point: the v1 devices hierarchy ('devices') and the cgroup2 one."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            fields, fstype_opts = pre.split(), post.split()
            if fstype_opts[0] == "cgroup2":
                found.setdefault("cgroup2", fields[4])
            elif fstype_opts[0] == "cgroup" and "devices" in fstype_opts[2].split(","):
                found.setdefault("devices", fields[4])
    return found


@pytest.fixture
def nodes_dir(tmp_path) -> str:
    path = tmp_path / "nodes"
    path.mkdir()
    for typ, major, minor in NODES:
        os.mknod(path / f"{typ}-{major}-{minor}", (0o060000 if typ == "b" else 0o020000) | 0o600,
                 os.makedev(major, minor))
    return str(path)


def _probe(cgroup_dir: str, nodes: str) -> dict[tuple[str, str], bool]:
    out = subprocess.run([sys.executable, "-c", PROBE, os.path.join(cgroup_dir, "cgroup.procs"),
                          nodes], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    got = {}
    for line in out.stdout.split("\n"):
        if line:
            name, access, ok = line.split()
            got[(name, access)] = ok == "1"
    return got


def _expected(rules: DeviceRules) -> dict[tuple[str, str], bool]:
    return {(f"{t}-{ma}-{mi}", acc): rules.allows(t, ma, mi, acc)
            for t, ma, mi in NODES for acc in ACCESSES}


@pytest.fixture
def scratch_cgroup(request):
    """A fresh cgroup directory of a unique name in the hierarchy named by the parameter,
    removed afterwards (its only process, the probe, has exited by then)."""
    made = []

    def make(kind: str) -> str:
        base = _cgroup_mounts().get(kind)
        if base is None:
            pytest.skip(f"no {kind} cgroup hierarchy on this host")
        path = os.path.join(base, f"dky-devtest-{uuid.uuid4().hex[:12]}")
        os.mkdir(path)
        made.append(path)
        return path

    yield make
    for path in made:
        os.rmdir(path)


@needs_root
@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_ebpf_program_decides_as_the_rules(name: str, nodes_dir: str, scratch_cgroup) -> None:
    rules = DeviceRules(RULE_SETS[name])
    cg = scratch_cgroup("cgroup2")
    fd = devicebpf.load(devicebpf.program(rules))
    try:
        devicebpf.attach(fd, cg)
        assert len(devicebpf.attached(cg)) == 1
    finally:
        os.close(fd)  # the cgroup holds it now
    got = _probe(cg, nodes_dir)
    assert got == _expected(rules)
    assert not all(got.values()) and any(got.values())  # the set both allows and refuses
    # without the program the same probe is allowed everything: the refusals were its doing
    assert devicebpf.detach_all(cg) == 1 and devicebpf.attached(cg) == []
    assert all(_probe(cg, nodes_dir).values())


@needs_root
@pytest.mark.parametrize("name", sorted(RULE_SETS))
def test_v1_devices_cgroup_decides_as_the_rules(name: str, nodes_dir: str,
                                                scratch_cgroup) -> None:
    rules = DeviceRules(RULE_SETS[name])
    cg = scratch_cgroup("devices")
    for fname, line in rules.v1_writes():
        with open(os.path.join(cg, fname), "w") as f:
            f.write(line)
    assert _probe(cg, nodes_dir) == _expected(rules)


@needs_root
def test_program_shape_and_verifier_errors() -> None:
    assert DeviceRules([{"allow": True}]).allows_all  # no program needed at all
    prog = devicebpf.program(DeviceRules([rule(False, "a *:* rwm")]))
    assert len(prog) == 8 * 8  # the six loads, then "r0 = 0; exit": denies everything
    with pytest.raises(OSError, match="device eBPF program"):
        devicebpf.load(b"\x95" + b"\x00" * 7)  # exit with r0 unset: the verifier refuses


@needs_root
def test_native_cgroups_on_a_pure_cgroup2_tree(nodes_dir: str) -> None:
    """The native driver's cgroup code in v2 mode (the host's cgroup2 mount taken as the whole
    tree): the device program is attached to the container's directory before anything joins,
    refusals as the rules say; a set it cannot attach is an error, never a silent start; the
    directories go with remove."""
    from dockyard.hookspecs.host.supervisor.cgroups import Cgroups
    base = _cgroup_mounts().get("cgroup2")
    if base is None:
        pytest.skip("no cgroup2 mount on this host")
    cg = Cgroups(base)
    assert cg.v2 and list(cg.hierarchies) == ["unified"]
    parent = f"dky-devtest-{uuid.uuid4().hex[:12]}"
    rules = RULE_SETS["docker-default"]
    try:
        dirs = cg.create(f"{parent}/c1", {"devices": rules})
        assert len(devicebpf.attached(dirs[0])) == 1
        assert _probe(dirs[0], nodes_dir) == _expected(DeviceRules(rules))
        assert Cgroups.remove(dirs) == []
        # a rule set no cgroup can hold: refused, and nothing is left of the cgroup
        with pytest.raises(InvalidParameter, match="wildcard"):
            cg.create(f"{parent}/c2", {"devices": [rule(False, "a *:* rwm"),
                                                   rule(True, "c 1:* r"), rule(False, "c 1:3 r")]})
        assert not os.path.exists(os.path.join(base, parent, "c2"))
        # allow-all: no program at all
        dirs = cg.create(f"{parent}/c3", {"devices": [{"allow": True, "access": "rwm"}]})
        assert devicebpf.attached(dirs[0]) == []
        Cgroups.remove(dirs)
    finally:
        for sub in ("c1", "c2", "c3", ""):
            path = os.path.join(base, parent, sub).rstrip("/")
            if os.path.isdir(path):
                os.rmdir(path)


@needs_root
def test_devices_under_a_directory_and_through_a_symlink(tmp_path) -> None:
    """``--device DIR:/dev/x`` takes every character and block device below DIR (FIFOs and
    other files left out), a symlink is followed, and a path with no device is dockerd's
    error."""
    from dockyard.hookspecs.host.devices import devices_under
    top = tmp_path / "devs"
    (top / "sub").mkdir(parents=True)
    os.mknod(top / "null", 0o020640, os.makedev(1, 3))
    os.mknod(top / "sub" / "loop", 0o060600, os.makedev(7, 42))
    os.mkfifo(top / "fifo")
    (top / "file").write_text("x")
    os.chown(top / "null", 12, 34)
    got = dockerdevs.nodes_at(str(top), "/dev/x")
    assert got == [
        {"path": "/dev/x/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o640,
         "uid": 12, "gid": 34},
        {"path": "/dev/x/sub/loop", "type": "b", "major": 7, "minor": 42, "fileMode": 0o600,
         "uid": 0, "gid": 0}]
    os.symlink(top / "null", tmp_path / "link")
    assert [d["path"] for d in dockerdevs.nodes_at(str(tmp_path / "link"), "/dev/l")] == ["/dev/l"]
    assert devices_under(str(top / "fifo")) == []
    for path, why in ((top / "file", "not a device node"), (tmp_path / "none", "no such file")):
        with pytest.raises(InvalidParameter, match=why):
            dockerdevs.nodes_at(str(path), "/dev/y")
