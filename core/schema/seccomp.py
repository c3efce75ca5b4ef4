"""A seccomp profile in Docker's JSON format (``--security-opt seccomp=profile.json``; the docker
CLI sends the file's content inside ``HostConfig.SecurityOpt``), after moby's
``profiles/seccomp`` Go types. Checked like a request body: a wrong type is a 400 naming its
path within the profile."""
from __future__ import annotations

from msgspec import UNSET

from .anycase import GoStruct

from .types import Opt, StrList, Uint32, Uint64


class Filter(GoStruct, rename="camel"):
    caps: Opt[StrList] = UNSET
    arches: Opt[StrList] = UNSET
    #: "5.8" (a kernel version, as a string)
    min_kernel: Opt[str] = UNSET


class Arg(GoStruct, rename="camel"):
    index: Opt[Uint32] = UNSET
    value: Opt[Uint64] = UNSET
    value_two: Opt[Uint64] = UNSET
    op: Opt[str] = UNSET


class Syscall(GoStruct, rename="camel"):
    name: Opt[str] = UNSET
    names: Opt[StrList] = UNSET
    action: Opt[str] = UNSET
    errno_ret: Opt[Uint32] = UNSET
    args: Opt[list[Arg]] = UNSET
    comment: Opt[str] = UNSET
    includes: Opt[Filter] = UNSET
    excludes: Opt[Filter] = UNSET


class Architecture(GoStruct):
    architecture: Opt[str] = UNSET
    subArchitectures: Opt[StrList] = UNSET


class SeccompProfile(GoStruct, rename="camel"):
    default_action: Opt[str] = UNSET
    default_errno_ret: Opt[Uint32] = UNSET
    listener_path: Opt[str] = UNSET
    listener_metadata: Opt[str] = UNSET
    architectures: Opt[StrList] = UNSET
    arch_map: Opt[list[Architecture]] = UNSET
    syscalls: Opt[list[Syscall]] = UNSET
    flags: Opt[StrList] = UNSET
