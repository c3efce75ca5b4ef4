"""Device access for containers: OCI ``linux.resources.devices`` rules, ``linux.devices`` nodes.

Part of the driver toolkit (:mod:`dockyard.hookspecs.host`), for exec drivers:

* :func:`parse_rule` reads the cgroup rule syntax (``c 1:3 rwm``, ``b *:* m``, ``a``) that
  Docker's ``--device-cgroup-rule`` and the v1 ``devices.allow`` file share.
* :class:`DeviceRules` evaluates an OCI rule list the way the kernel's v1 devices controller
  would after the rules were written one by one: a default (allow or deny) plus exceptions.
  :meth:`DeviceRules.allows` is the reference decision, :meth:`DeviceRules.v1_writes` the writes
  that put a v1 ``devices`` cgroup in that state, and :mod:`dockyard.hookspecs.host.devicebpf` turns the
  same state into the eBPF program a cgroup v2 directory needs — so v1 and v2 decide alike.
* :func:`create_nodes` makes the spec's ``linux.devices`` under a container's root (``mknod``, or
  bind mounts of the host's nodes inside a user namespace, where ``mknod`` is not allowed).

Rule semantics (those of ``security/device_cgroup.c``): a rule of type ``a`` (whatever its
numbers and access) resets everything — ``allow`` opens every device, a deny closes every one —
and drops the exceptions. Any other rule with the same verdict as the default removes access
from the exception for exactly its (type, major, minor); with the opposite verdict it adds an
exception. A request (type, major, minor, access) in a deny-by-default cgroup is allowed when
one exception matches its numbers (``*`` matches all) and holds every access asked for; in an
allow-by-default cgroup it is denied when one matching exception shares any access with it.
Removing access that a wildcard exception also grants (``allow c 1:* r`` then ``deny c 1:3 r``)
cannot be expressed in v1 (the kernel silently ignores it), so it is refused, as runc does.
A new cgroup starts open (allow-all); a list meant to confine begins with a deny-all rule.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from typing import Any, Callable, Iterable

from ..errors import InvalidParameter

#: Docker's ``--device-cgroup-rule`` syntax (also what ``devices.allow`` takes)
RULE_RE = re.compile(r"^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$")
ACCESS = "rwm"
#: Linux's ``dev_t`` split: 12 bits of major, 20 of minor
MAX_MAJOR, MAX_MINOR = (1 << 12) - 1, (1 << 20) - 1

Key = tuple[str, int | None, int | None]  # (type, major or None for *, minor or None)


def _access(value: Any, where: str) -> str:
    """Canonical access string (``rwm`` order); empty or missing means all three."""
    if value is None or value == "":
        return ACCESS
    if not isinstance(value, str) or not set(value) <= set(ACCESS):
        raise InvalidParameter(f"{where}: invalid device access {value!r} (a subset of rwm)")
    return "".join(c for c in ACCESS if c in value)


def _number(value: Any, where: str, limit: int) -> int | None:
    if value is None or value == -1 or value == "*":
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise InvalidParameter(
            f"{where}: invalid device number {value!r} (0..{limit} or -1 for all)"
        )
    return value


def parse_rule(text: str) -> dict[str, Any]:
    """An OCI allow rule from Docker's ``--device-cgroup-rule`` syntax: ``TYPE MAJOR:MINOR
    ACCESS``, TYPE ``a``, ``b`` or ``c``, ``*`` for any number, ACCESS of ``r``, ``w``, ``m``."""
    m = RULE_RE.match(text) if isinstance(text, str) else None
    if m is None:
        raise InvalidParameter(f"invalid device cgroup rule format: '{text}'")
    typ, major, minor, access = m.groups()
    try:
        rule = {
            "allow": True,
            "type": typ,
            "major": -1 if major == "*" else _number(int(major), "major", MAX_MAJOR),
            "minor": -1 if minor == "*" else _number(int(minor), "minor", MAX_MINOR),
            "access": _access(access, text),
        }
    except InvalidParameter:
        raise InvalidParameter(
            f"invalid device cgroup rule format: '{text}' "
            f"(major 0..{MAX_MAJOR}, minor 0..{MAX_MINOR})"
        ) from None
    return rule


def format_rule(typ: str, major: int | None, minor: int | None, access: str) -> str:
    """``devices.allow`` / ``devices.deny`` line for one rule."""
    if typ == "a":
        return "a"
    return f"{typ} {'*' if major is None else major}:{'*' if minor is None else minor} {access}"


class DeviceRules:
    """The state an OCI ``linux.resources.devices`` list leaves a device cgroup in."""

    def __init__(self, rules: Iterable[dict[str, Any]] | None = ()) -> None:
        #: the verdict for a device no exception names
        self.default_allow = True
        #: (type, major, minor) -> access of the exception ("rwm" order)
        self.exceptions: dict[Key, str] = {}
        for i, rule in enumerate(rules or ()):
            self.apply(rule, f"linux.resources.devices[{i}]")

    def apply(self, rule: dict[str, Any], where: str = "device rule") -> None:
        if not isinstance(rule, dict) or not isinstance(rule.get("allow"), bool):
            raise InvalidParameter(f"{where}: a device rule needs a boolean 'allow'")
        typ = rule.get("type") or "a"
        if typ not in ("a", "b", "c"):
            raise InvalidParameter(f"{where}: invalid device type {typ!r} (a, b or c)")
        access = _access(rule.get("access"), where)
        if typ == "a":
            self.default_allow, self.exceptions = rule["allow"], {}
            return
        key: Key = (
            typ,
            _number(rule.get("major"), where, MAX_MAJOR),
            _number(rule.get("minor"), where, MAX_MINOR),
        )
        held = self.exceptions.get(key, "")
        if rule["allow"] != self.default_allow:
            self.exceptions[key] = _access("".join(set(held + access)), where)
            return
        wider_keys: tuple[Key, ...] = ((typ, None, key[2]), (typ, key[1], None), (typ, None, None))
        for wider in wider_keys:
            if wider != key and set(self.exceptions.get(wider, "")) & set(access):
                raise InvalidParameter(
                    f"{where}: {format_rule(*key, access)} cannot be "
                    f"{'allowed' if rule['allow'] else 'denied'} apart from the wider exception "
                    f"{format_rule(*wider, self.exceptions[wider])} (the devices cgroup cannot "
                    f"punch a hole in a wildcard rule)"
                )
        left = "".join(c for c in held if c not in access)
        if left:
            self.exceptions[key] = left
        else:
            self.exceptions.pop(key, None)

    @property
    def allows_all(self) -> bool:
        return self.default_allow and not self.exceptions

    def sorted_exceptions(self) -> list[tuple[Key, str]]:
        """Exceptions in a stable order (so equal states give equal writes and programs)."""

        def order(item: tuple[Key, str]) -> tuple[int, int, str]:
            (typ, major, minor), _ = item
            return (-1 if major is None else major, -1 if minor is None else minor, typ)

        return sorted(self.exceptions.items(), key=order)

    def allows(self, typ: str, major: int, minor: int, access: str) -> bool:
        """The kernel's decision for a request (``typ`` ``b`` or ``c``, ``access`` a non-empty
        subset of ``rwm``: ``m`` for mknod, ``r``/``w`` for open)."""
        want = set(access)
        for (etyp, emajor, eminor), eaccess in self.exceptions.items():
            if etyp != typ or emajor not in (None, major) or eminor not in (None, minor):
                continue
            if self.default_allow and want & set(eaccess):
                return False
            if not self.default_allow and want <= set(eaccess):
                return True
        return self.default_allow

    def v1_writes(self) -> list[tuple[str, str]]:
        """``(file, line)`` writes that put a v1 ``devices`` cgroup of unknown state into this
        one: the reset first (``devices.deny a`` or ``devices.allow a``), then one exception per
        write, each a single ``write(2)`` so the kernel applies it whole."""
        reset, other = (
            ("devices.allow", "devices.deny")
            if self.default_allow
            else ("devices.deny", "devices.allow")
        )
        return [(reset, "a")] + [
            (other, format_rule(*key, access)) for key, access in self.sorted_exceptions()
        ]


# -- device nodes ---------------------------------------------------------------------------------
_NODE_TYPES = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
#: directories of the host's /dev that hold no device of its own (runc's list)
HOST_DEV_SKIP_DIRS = ("pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev")


def device_from_path(path: str, container_path: str | None = None) -> dict[str, Any] | None:
    """The OCI ``linux.devices`` entry for the node at host ``path`` (symlinks not followed),
    or None when it is no character, block or FIFO device."""
    st = os.lstat(path)
    for typ, fmt in (("c", stat.S_IFCHR), ("b", stat.S_IFBLK), ("p", stat.S_IFIFO)):
        if stat.S_IFMT(st.st_mode) == fmt:
            return {
                "path": container_path or path,
                "type": typ,
                "major": os.major(st.st_rdev),
                "minor": os.minor(st.st_rdev),
                "fileMode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid,
                "gid": st.st_gid,
            }
    return None


def devices_under(path: str, container_path: str | None = None) -> list[dict[str, Any]]:
    """Every character and block device at or below host ``path`` (a node, or a directory
    walked without following symlinks; FIFOs and the directories of
    :data:`HOST_DEV_SKIP_DIRS` left out, and ``console``), with container paths under
    ``container_path`` (default: the same). ``devices_under("/dev")`` is the host's devices,
    what ``--privileged`` gives."""
    dest = container_path or path
    dev = device_from_path(path, dest)
    if dev is not None:
        return [dev] if dev["type"] != "p" else []
    out: list[dict[str, Any]] = []
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        return out
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in HOST_DEV_SKIP_DIRS)
        rel = os.path.relpath(dirpath, path)
        for name in sorted(filenames):
            if name == "console":
                continue
            try:
                dev = device_from_path(
                    os.path.join(dirpath, name), os.path.normpath(os.path.join(dest, rel, name))
                )
            except OSError:  # gone meanwhile
                continue
            if dev is not None and dev["type"] != "p":
                out.append(dev)
    return out


def check_node(dev: Any, where: str) -> None:
    """Refuse a malformed ``linux.devices`` entry (before anything is created)."""
    if (
        not isinstance(dev, dict)
        or not isinstance(dev.get("path"), str)
        or not dev["path"].startswith("/")
        or dev.get("type") not in _NODE_TYPES
    ):
        raise InvalidParameter(
            f"{where}: a device needs an absolute 'path' and a 'type' (c, b, u or p): {dev!r}"
        )
    if dev["type"] != "p":
        _number(dev.get("major"), where + ".major", MAX_MAJOR)
        _number(dev.get("minor"), where + ".minor", MAX_MINOR)
        if dev.get("major") is None or dev.get("minor") is None:
            raise InvalidParameter(f"{where}: a device needs 'major' and 'minor'")


def host_node(dev: dict[str, Any]) -> str:
    """A host path of the node ``dev`` describes (for a bind mount): its own path when the host
    has that very device there, else the first match under ``/dev``."""
    want = (dev["type"].replace("u", "c"), dev.get("major"), dev.get("minor"))

    def same(path: str) -> bool:
        try:
            found = device_from_path(path)
        except OSError:
            return False
        return found is not None and (found["type"], found["major"], found["minor"]) == want

    if same(dev["path"]):
        return dev["path"]
    for dirpath, dirnames, filenames in os.walk("/dev"):
        dirnames[:] = [d for d in dirnames if d not in HOST_DEV_SKIP_DIRS]
        for name in sorted(filenames):
            if same(os.path.join(dirpath, name)):
                return os.path.join(dirpath, name)
    raise InvalidParameter(
        f"no host device node {want[0]} {want[1]}:{want[2]} to bind at "
        f"{dev['path']} (a user namespace cannot mknod)"
    )


def create_nodes(
    root: str,
    devices: list[dict[str, Any]],
    resolve: Callable[[str, str], str],
    bind: Callable[[str, str], None] | None = None,
) -> None:
    """Create ``devices`` (OCI ``linux.devices``) under ``root``, the container's root file
    system, before it becomes ``/``. ``resolve(root, path)`` is the caller's symlink-safe join
    (a container path never escapes ``root``). Without ``bind`` each node is made with
    ``mknod(2)`` with its mode and owner; with it (a user namespace, where ``mknod`` is refused)
    an empty file is bind-mounted over by ``bind(source, target)`` from the host's node
    (:func:`host_node`). A path that already exists is left as it is (a node the caller made,
    or one of the standard ones)."""
    for i, dev in enumerate(devices):
        check_node(dev, f"linux.devices[{i}]")
    for dev in devices:
        target = resolve(root, dev["path"])
        if os.path.lexists(target):
            continue
        os.makedirs(os.path.dirname(target), mode=0o755, exist_ok=True)
        if bind is not None:
            source = host_node(dev)
            os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o000))
            bind(source, target)
            continue
        mode = (int(dev["fileMode"]) if dev.get("fileMode") is not None else 0o666) & 0o7777
        rdev = os.makedev(dev["major"], dev["minor"]) if dev["type"] != "p" else 0
        old = os.umask(0)
        try:
            os.mknod(target, mode | _NODE_TYPES[dev["type"]], rdev)
        except OSError as e:
            raise OSError(
                e.errno, f"mknod {dev['path']}: {os.strerror(e.errno or errno.EIO)}"
            ) from None
        finally:
            os.umask(old)
        os.chown(target, int(dev.get("uid") or 0), int(dev.get("gid") or 0))
