"""dockyard's runtime spec → a liblxc container configuration, in one place.

The spec is the one every exec driver receives (OCI ``config.json`` shaped, see
:mod:`dockyard.hookspecs.execdriver`). What liblxc has a key for is written as that key:

* ``root.path`` → ``lxc.rootfs.path`` (``dir:``), ``root.readonly`` → ``lxc.rootfs.options = ro``;
* namespaces: the types made new → ``lxc.namespace.clone``; the others are the starter's: the
  host's, or one given by ``path``, which the starter joins (``setns``) before liblxc starts; a new network namespace is ``lxc.net.0.type = empty`` (only ``lo``), any other
  ``none``;
* ``linux.resources`` → ``lxc.cgroup.*`` (v1) or ``lxc.cgroup2.*`` (v2), the same writes the
  toolkit's :mod:`~dockyard.hookspecs.host.cgroupfiles` gives every driver, and the device rules
  as ``devices.deny``/``devices.allow`` (v1);
* capabilities → ``lxc.cap.keep``; ``noNewPrivileges`` → ``lxc.no_new_privs``; rlimits →
  ``lxc.prlimit.*`` (held to this host's hard limits); seccomp → ``lxc.seccomp.profile`` in
  liblxc's format 2 (:func:`seccomp_v2`); hostname → ``lxc.uts.name``; the user →
  ``lxc.init.uid``/``gid``/``groups``; env → ``lxc.environment``; cwd → ``lxc.init.cwd``;
* mounts → ``lxc.mount.auto`` (proc, sysfs, cgroup) and ``lxc.mount.entry`` (binds, tmpfs,
  mqueue); ``/dev`` is liblxc's ``autodev``, ``/dev/pts`` its own devpts.

What liblxc has no key for — ``maskedPaths``, ``readonlyPaths``, the ``linux.devices`` nodes and
``domainname`` —
is done by :mod:`.hook`, liblxc's ``autodev`` hook, in the container's mount namespace before
it pivots into the root file system.
"""
from __future__ import annotations

import os
import resource
import sys
from typing import Any

from dockyard.hookspecs.errors import InvalidParameter
from dockyard.hookspecs.host import cgroupfiles

#: OCI namespace types → liblxc's names
NS_NAMES = {"pid": "pid", "network": "net", "mount": "mnt", "ipc": "ipc", "uts": "uts",
            "cgroup": "cgroup", "user": "user"}
#: the spec's mount types liblxc makes itself (``lxc.mount.auto``, autodev, its devpts)
OWN_MOUNTS = ("/proc", "/sys", "/dev", "/dev/pts", "/sys/fs/cgroup")
#: OCI seccomp actions → liblxc's words
SECCOMP_ACTIONS = {"SCMP_ACT_ALLOW": "allow", "SCMP_ACT_KILL": "kill",
                   "SCMP_ACT_KILL_THREAD": "kill", "SCMP_ACT_KILL_PROCESS": "kill",
                   "SCMP_ACT_TRAP": "trap"}
DEFAULT_ERRNO = 1  # EPERM, as Docker's profile answers


def v2_host() -> bool:
    """Whether this host's cgroups are pure v2 (no v1 memory hierarchy)."""
    return not os.path.isdir("/sys/fs/cgroup/memory") and \
        os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def _line(key: str, value: Any) -> str:
    text = str(value)
    if "\n" in text:
        raise InvalidParameter(f"{key}: a value with a newline cannot be given to liblxc")
    return f"{key} = {text}"


def namespaces(spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The namespace lines, and the namespaces to join by path (``{oci type: path}``)."""
    wanted = {n["type"]: n.get("path") or "" for n in (spec.get("linux") or {}).get(
        "namespaces") or ()}
    unknown = sorted(set(wanted) - set(NS_NAMES))
    if unknown:
        raise InvalidParameter(f"lxc: unknown namespace type {unknown[0]!r}")
    if "user" in wanted:
        raise InvalidParameter("the lxc exec driver does not run containers in user namespaces")
    # the types not cloned are the starter's: the host's, or the one it joined by path
    clone = [NS_NAMES[t] for t, path in wanted.items() if not path]
    if "mnt" not in clone:
        clone.append("mnt")  # liblxc always sets up a mount namespace
    new_net = "net" in clone
    lines = [_line("lxc.namespace.clone", " ".join(clone)),
             _line("lxc.net.0.type", "empty" if new_net else "none")]
    joins = {t: p for t, p in wanted.items() if p}
    return lines, joins


def cgroup_lines(resources: dict[str, Any], v2: bool) -> list[str]:
    """``linux.resources`` as liblxc cgroup keys (v1 ``lxc.cgroup.``, v2 ``lxc.cgroup2.``)."""
    try:
        writes = cgroupfiles.v2_writes(resources) if v2 else cgroupfiles.v1_writes(resources)
    except cgroupfiles.Untranslatable as e:
        raise InvalidParameter(str(e)) from None
    prefix = "lxc.cgroup2." if v2 else "lxc.cgroup."
    lines = [_line(prefix + w.file, w.value) for w in writes]
    rules = resources.get("devices")
    if rules is not None:
        if v2:
            raise InvalidParameter("lxc: device rules on a cgroup v2 host are not supported")
        lines += device_rules(rules)
    return lines


def device_rules(rules: list[dict[str, Any]]) -> list[str]:
    """OCI device rules → v1 ``devices.deny``/``devices.allow`` lines, in order."""
    out = []
    for r in rules:
        kind = r.get("type") or "a"
        major, minor = r.get("major"), r.get("minor")
        nums = "" if kind == "a" else (
            f" {'*' if major in (None, -1) else int(major)}:{'*' if minor in (None, -1) else int(minor)}")
        key = "lxc.cgroup.devices.allow" if r.get("allow") else "lxc.cgroup.devices.deny"
        out.append(_line(key, f"{kind}{nums} {r.get('access') or 'rwm'}"))
    return out


def _cap_names(caps: dict[str, Any] | None) -> list[str]:
    names: set[str] = set()
    for key in ("bounding", "effective", "permitted"):
        names.update((caps or {}).get(key) or ())
    return sorted(n.lower().removeprefix("cap_") for n in names)


def process_lines(proc: dict[str, Any], user: tuple[int, int, list[int]]) -> list[str]:
    """Capabilities, no_new_privs, rlimits, user, env and cwd of the container's process."""
    uid, gid, groups = user
    lines = [_line("lxc.no_new_privs", 1 if proc.get("noNewPrivileges") else 0),
             _line("lxc.init.uid", uid), _line("lxc.init.gid", gid),
             _line("lxc.init.cwd", proc.get("cwd") or "/")]
    if proc.get("capabilities") is not None:
        caps = _cap_names(proc["capabilities"])
        lines.append(_line("lxc.cap.keep", " ".join(caps) if caps else "none"))
    if groups:
        lines.append(_line("lxc.init.groups", ",".join(str(g) for g in groups)))
    for rl in proc.get("rlimits") or ():
        lines.append(_line(f"lxc.prlimit.{_rlimit_name(rl['type'])}", _rlimit_value(rl)))
    for kv in proc.get("env") or ():
        lines.append(_line("lxc.environment", kv))
    if proc.get("oomScoreAdj") is not None:
        lines.append(_line("lxc.proc.oom_score_adj", int(proc["oomScoreAdj"])))
    return lines


def _rlimit_name(kind: str) -> str:
    if not str(kind).startswith("RLIMIT_") or getattr(resource, str(kind), None) is None:
        raise InvalidParameter(f"unknown rlimit {kind}")
    return str(kind)[len("RLIMIT_"):].lower()


def _rlimit_value(rl: dict[str, Any]) -> str:
    """``soft:hard``, the hard limit held to this process's (root may lack CAP_SYS_RESOURCE)."""
    hard_now = resource.getrlimit(getattr(resource, rl["type"]))[1]
    hard = int(rl["hard"])
    if hard_now != resource.RLIM_INFINITY and (hard < 0 or hard > hard_now):
        hard = hard_now
    soft = min(int(rl["soft"]), hard) if hard >= 0 else int(rl["soft"])

    def word(v: int) -> str:
        return "unlimited" if v < 0 or v == resource.RLIM_INFINITY else str(v)
    return f"{word(soft)}:{word(hard)}"


def mount_lines(mounts: list[dict[str, Any]], rootfs: str) -> list[str]:
    """The spec's mounts: liblxc's own (proc, sysfs, cgroup, /dev, devpts) as ``lxc.mount.auto``
    and ``autodev``, the rest as ``lxc.mount.entry`` lines (targets relative to the rootfs)."""
    auto = ["proc:rw"]
    lines = []
    for m in mounts:
        dest = os.path.normpath(m["destination"])
        opts = list(m.get("options") or ())
        kind = m.get("type") or ("bind" if "bind" in opts or "rbind" in opts else "")
        if dest == "/sys" and kind == "sysfs":
            auto.append("sys:rw" if "rw" in opts and "ro" not in opts else "sys:ro")
        elif dest == "/sys/fs/cgroup" and kind == "cgroup":
            auto.append("cgroup:rw" if "rw" in opts else "cgroup:ro")
        elif dest in OWN_MOUNTS:
            continue
        else:
            lines.append(_entry(m, dest, kind, opts, rootfs))
    return [_line("lxc.mount.auto", " ".join(auto)), _line("lxc.autodev", 1), *lines]


def _entry(m: dict[str, Any], dest: str, kind: str, opts: list[str], rootfs: str) -> str:
    source = m.get("source") or kind or "none"
    if " " in source or " " in dest or "\t" in source + dest:
        raise InvalidParameter(f"lxc: mount paths with blanks are not supported ({dest})")
    if kind == "bind":
        fstype = "none"
        if "bind" not in opts and "rbind" not in opts:
            opts = ["rbind", *opts]
        create = "create=dir" if os.path.isdir(source) else "create=file"
    else:
        fstype = kind or "none"
        create = "create=dir"
    options = ",".join([o for o in opts if o not in ("private", "rprivate")] + [create])
    target = dest.lstrip("/") or "."
    del rootfs  # targets are relative to lxc.rootfs.mount
    return f"lxc.mount.entry = {source} {target} {fstype} {options} 0 0"


def seccomp_v2(profile: dict[str, Any]) -> str:
    """An OCI ``linux.seccomp`` (a resolved Docker profile) in liblxc's format 2."""
    default = _action(profile.get("defaultAction") or "SCMP_ACT_ALLOW",
                      profile.get("defaultErrnoRet"))
    lines = ["2", f"allowlist {default}", "[all]"]
    for rule in profile.get("syscalls") or ():
        action = _action(rule.get("action") or "SCMP_ACT_ALLOW", rule.get("errnoRet"))
        if action == default:
            continue  # liblxc (libseccomp) refuses a rule repeating the default action
        args = "".join(_arg(a) for a in rule.get("args") or ())
        for name in rule.get("names") or ():
            lines.append(f"{name} {action}{' ' + args if args else ''}")
    return "\n".join(lines) + "\n"


def _action(action: str, errno_ret: int | None) -> str:
    if action == "SCMP_ACT_ERRNO":
        return f"errno {DEFAULT_ERRNO if errno_ret is None else int(errno_ret)}"
    if action not in SECCOMP_ACTIONS:
        raise InvalidParameter(f"lxc: seccomp action {action} is not supported by liblxc")
    return SECCOMP_ACTIONS[action]


def _arg(a: dict[str, Any]) -> str:
    """One argument condition: ``[index,value,op,mask]``; OCI's ``MASKED_EQ`` gives the mask as
    ``value`` and the datum as ``valueTwo``, liblxc the datum second and the mask last."""
    op = a.get("op") or "SCMP_CMP_EQ"
    index, value, two = int(a.get("index", 0)), int(a.get("value", 0)), int(a.get("valueTwo", 0))
    if op == "SCMP_CMP_MASKED_EQ":
        return f"[{index},{two},{op},{value}]"
    return f"[{index},{value},{op}]"


def generate(spec: dict[str, Any], *, name: str, cdir: str,
             user: tuple[int, int, list[int]]) -> tuple[str, dict[str, str]]:
    """The configuration file's text for container ``name`` (its liblxc directory ``cdir``),
    and the namespaces the starter joins by path."""
    lin = spec.get("linux") or {}
    root = spec.get("root") or {}
    ns_lines, joins = namespaces(spec)
    lines = [_line("lxc.rootfs.path", "dir:" + os.path.abspath(root["path"])),
             _line("lxc.apparmor.profile", "unconfined"),
             _line("lxc.console.path", "none"), _line("lxc.tty.max", 0),
             _line("lxc.pty.max", 1024), _line("lxc.log.file", os.path.join(cdir, "lxc.log")),
             _line("lxc.log.level", "ERROR"),
             *ns_lines]
    if lin.get("devices") or lin.get("maskedPaths") or lin.get("readonlyPaths") or \
            spec.get("domainname"):
        lines += [_line("lxc.hook.version", 1),
                  _line("lxc.hook.autodev", f"{sys.executable} -m "
                        f"dockyard.plugins.execdrivers.lxc.hook {os.path.join(cdir, 'hook.json')}")]
    lines.append(_line("lxc.hook.start-host", start_hook(cdir)))
    if lin.get("rootfsPropagation"):  # liblxc makes the root a shared mount of its own
        raise InvalidParameter("the lxc exec driver does not set the root file system's mount "
                               "propagation (a volume's shared or slave propagation)")
    if root.get("readonly"):
        lines.append(_line("lxc.rootfs.options", "ro"))
    own_uts = any(n.get("type") == "uts" and not n.get("path")
                  for n in lin.get("namespaces") or ())
    if spec.get("domainname") and not own_uts:
        raise InvalidParameter("lxc: a domain name needs a uts namespace of the container's own")
    if spec.get("hostname") and own_uts:  # never the host's name, nor a joined one's
        lines.append(_line("lxc.uts.name", spec["hostname"]))
    lines += process_lines(spec.get("process") or {}, user)
    lines += cgroup_lines(lin.get("resources") or {}, v2_host())
    if lin.get("cgroupsPath"):
        base = str(lin["cgroupsPath"]).strip("/")
        lines += [_line("lxc.cgroup.dir.container", base + "/payload"),
                  _line("lxc.cgroup.dir.monitor", base + "/monitor")]
    lines += mount_lines(spec.get("mounts") or default_mounts(), root["path"])
    for key, value in (lin.get("sysctl") or {}).items():
        lines.append(_line(f"lxc.sysctl.{key}", value))
    if lin.get("seccomp"):
        path = os.path.join(cdir, "seccomp")
        with open(path, "w") as f:
            f.write(seccomp_v2(lin["seccomp"]))
        lines.append(_line("lxc.seccomp.profile", path))
    return "\n".join(lines) + "\n", joins


def start_hook(cdir: str) -> str:
    """liblxc's ``start-host`` hook, run by ``sh`` once the container's process and cgroups
    exist, right before liblxc lets the process exec: give the monitor the process's pid
    (``LXC_PID``) through one FIFO, and wait for its go-ahead on the other (it sets its OOM
    watch up meanwhile). FIFOs, not signals: the hook may run in a pid namespace the starter
    joined, where the monitor has no pid."""
    return (f"sh -c 'echo $LXC_PID > {cdir}/hook.in && "
            f"head -c 1 {cdir}/hook.out >/dev/null'")


def default_mounts() -> list[dict[str, Any]]:
    """Docker's default mounts, for a spec that has none."""
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs"},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts"},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
    ]
