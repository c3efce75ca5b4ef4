"""Containers as a state machine: created → running ⇄ paused → exited → removed.

The record of each container lives in SQLite (the shape ``GET /containers/{id}/json`` shows, plus
private ``_`` keys); the exec driver runs its process; the graph driver holds its rootfs; the
network driver its endpoint. This service drives them in order and keeps the record true.
"""
from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import json
import logging
import os
import secrets
import shutil
import signal as signal_mod
import socket
import time
from typing import Any, AsyncIterator

from dockyard.hookspecs.errors import (Conflict, DockyardError, ExecError, InvalidParameter,
                                       NotFound, NotModified)
from dockyard.hookspecs.execdriver import AttachStreams, ExitStatus
from dockyard.hookspecs.host import ns, units
from dockyard.hookspecs.host.timefmt import rfc3339
from dockyard.hookspecs.idmap import IDMap

from . import health, names, resources as resourcesmod, seccomp as seccompmod, spec as specmod
from .attach import (PendingAttach, StartFailed, check_attachable, check_removable, connect_pending,
                     end_pending, exit_being_recorded, no_live_output, record_start_failure)
from .blobs import atomic_write
from .filters import Args
from .filtersets import prune_matcher
from . import links as linksmod, storageopt
from .networks import DEFAULT_NETWORKS, NetworkService, parse_extra_hosts

log = logging.getLogger(__name__)

ZERO_TIME = "0001-01-01T00:00:00Z"
KILL_WAIT = 10  # seconds a SIGKILL waits for the exit, as dockerd


def parse_signal(sig: str | int | None, default: int = signal_mod.SIGKILL) -> int:
    if sig in (None, ""):
        return int(default)
    if isinstance(sig, int) or str(sig).isdigit():
        num = int(sig)
        if not 0 < num < 65:
            raise InvalidParameter(f"Invalid signal: {sig}")
        return num
    name = str(sig).upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    if name.startswith("SIGRTMIN+") or name.startswith("SIGRTMAX-"):
        base = signal_mod.SIGRTMIN if "MIN" in name else signal_mod.SIGRTMAX
        try:
            off = int(name[9:])
        except ValueError:
            raise InvalidParameter(f"Invalid signal: {sig}") from None
        return int(base) + off if "MIN" in name else int(base) - off
    try:
        return int(signal_mod.Signals[name])
    except KeyError:
        raise InvalidParameter(f"Invalid signal: {sig}") from None


class _Runtime:
    """What the daemon keeps in memory for one container."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.prepared = False          # rootfs mounted and the exec driver holds the spec
        self.exit_waiters: list[asyncio.Future[int]] = []
        self.remove_waiters: list[asyncio.Future[int]] = []
        self.watcher: asyncio.Task[None] | None = None
        self.health: asyncio.Task[None] | None = None  # the health check loop, if any
        self.stopping = False
        self.restart_delay = 0.0       # the restart policy's back-off, doubled per quick exit
        self.pending: list[PendingAttach] = []  # attaches answered before it could be prepared


class ContainerService:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.state = daemon.state
        self.images = daemon.images
        self.graph = daemon.graph
        self.root = os.path.join(daemon.data_root, "containers")
        os.makedirs(self.root, exist_ok=True)
        self._rt: dict[str, _Runtime] = {}
        self._cache: dict[str, dict[str, Any]] = {c["Id"]: c for c in self.state.containers()}

    # -- lookup & persistence -------------------------------------------------------------------
    def mounted_ids(self) -> list[str]:
        """Short ids of the containers whose rootfs is mounted (prepared or running)."""
        return [cid[:12] for cid, rt in self._rt.items() if rt.prepared]

    def drv(self, cid: str) -> Any:  # the exec driver holding container cid (its record names it)
        return self.d.runtimes.of(self._cache.get(cid))

    def rt(self, cid: str) -> _Runtime:
        if cid not in self._rt:
            self._rt[cid] = _Runtime()
        return self._rt[cid]

    def all(self) -> list[dict[str, Any]]:
        return sorted(self._cache.values(), key=lambda c: c["_created"], reverse=True)

    def get(self, ref: str) -> dict[str, Any]:
        """A container by full id, name (with or without ``/``) or unique id prefix."""
        if not ref:
            raise NotFound("No such container: ")
        if ref in self._cache:
            return self._cache[ref]
        name = ref if ref.startswith("/") else "/" + ref
        for c in self._cache.values():
            if c["Name"] == name:
                return c
        matches = [c for cid, c in self._cache.items() if cid.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidParameter(f"multiple IDs found with provided prefix: {ref}")
        raise NotFound(f"No such container: {ref}")

    def save(self, c: dict[str, Any]) -> None:
        self.state.put_container(c)
        self._cache[c["Id"]] = c

    def using_image(self, image_id: str) -> list[dict[str, Any]]:
        return [c for c in self._cache.values() if c["Image"] == image_id]

    @staticmethod
    def public(c: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in c.items() if not k.startswith("_")}

    # -- create ---------------------------------------------------------------------------------
    async def create(self, body: dict[str, Any], name: str | None) -> dict[str, Any]:
        """``body``: a create body checked by :class:`dockyard.core.schema.ContainerCreate`."""
        image_name = body.get("Image")
        if not image_name:
            raise InvalidParameter("Config.Image must be given: no image specified")
        host = body.get("HostConfig") or {}
        if name:
            if not names.VALID_NAME.match(name):
                raise InvalidParameter(f"Invalid container name ({name}), only "
                                       "[a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
            full = "/" + name.lstrip("/")
            for c in self._cache.values():
                if c["Name"] == full:
                    raise Conflict(f'Conflict. The container name "{full}" is already in use by '
                                   f'container "{c["Id"]}". You have to remove (or rename) that '
                                   "container to be able to reuse that name.")
        else:
            full = "/" + names.random_name({c["Name"][1:] for c in self._cache.values()})
        image_id = self.images.resolve(image_name)
        img_cfg = (self.images.config(image_id).get("config") or {})
        network_mode = host.get("NetworkMode") or "default"
        net_peer = None
        if network_mode.startswith("container:"):
            net_peer = self._peer(network_mode[len("container:"):], "join the network namespace of")
            for key, what in (("PortBindings", "port publishing"), ("PublishAllPorts", "port publishing"),
                              ("ExtraHosts", "--add-host"), ("Dns", "--dns"), ("Links", "--link"),
                              ("MacAddress", "mac-address")):
                if host.get(key) or (key == "MacAddress" and body.get(key)):
                    raise InvalidParameter(f"conflicting options: {what} and the container type "
                                           f"network mode")
            if body.get("Hostname"):
                raise InvalidParameter("conflicting options: hostname and the network mode")
            network_mode = "container:" + net_peer["Id"]
            network = None
        else:
            network = self.d.networks.resolve_mode(network_mode)  # None: looked up at start

        cid = secrets.token_hex(32)
        # as dockerd: the host's name with the host's network (or UTS namespace)
        host_name = host.get("UTSMode") == "host" or (
            network is not None and self.d.networks.driver_of(network["Name"]).namespace == "host")
        cfg = {
            "Hostname": body.get("Hostname") or (socket.gethostname() if host_name
                                                 else net_peer["Config"]["Hostname"] if net_peer
                                                 else cid[:12]),
            "Domainname": body.get("Domainname") or "",
            # as dockerd: an empty User (what the docker CLI sends) means the image's
            "User": body.get("User") or img_cfg.get("User", ""),
            "AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout")),
            "AttachStderr": bool(body.get("AttachStderr")), "Tty": bool(body.get("Tty")),
            "OpenStdin": bool(body.get("OpenStdin")), "StdinOnce": bool(body.get("StdinOnce")),
            "Env": specmod.merge_env(img_cfg.get("Env"), body.get("Env")),
            "Cmd": body.get("Cmd"),
            "Image": image_name,
            "Volumes": body.get("Volumes") or img_cfg.get("Volumes"),
            "WorkingDir": body.get("WorkingDir") or img_cfg.get("WorkingDir", ""),
            "Entrypoint": body.get("Entrypoint"),
            "OnBuild": None,
            "Labels": {**(img_cfg.get("Labels") or {}), **(body.get("Labels") or {})},
            "StopSignal": body.get("StopSignal") or img_cfg.get("StopSignal") or "SIGTERM",
        }
        if body.get("StopTimeout") is not None:
            cfg["StopTimeout"] = int(body["StopTimeout"])
        if body.get("Shell"):  # kept for commit, as dockerd (omitted when empty)
            cfg["Shell"] = body["Shell"]
        check = health.effective(img_cfg.get("Healthcheck"), body.get("Healthcheck"))
        if check is not None or body.get("Healthcheck"):
            # Go's omitempty: {"Test": ["NONE"]} stays just that
            cfg["Healthcheck"] = {k: v for k, v in (check or body["Healthcheck"]).items() if v}
        if body.get("ExposedPorts") or img_cfg.get("ExposedPorts"):
            cfg["ExposedPorts"] = {**(img_cfg.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})}
        # Docker's rule: an Entrypoint given at create drops the image's Cmd.
        if cfg["Entrypoint"] is None:
            cfg["Entrypoint"] = img_cfg.get("Entrypoint")
            if cfg["Cmd"] is None:
                cfg["Cmd"] = img_cfg.get("Cmd")
        if cfg["Entrypoint"] == [""]:
            cfg["Entrypoint"] = None
        args = specmod.command(cfg)
        parse_signal(cfg["StopSignal"])
        if "SecurityOpt" in host:
            host["SecurityOpt"] = seccompmod.normalize_security_opts(host["SecurityOpt"])
            specmod.security_options(host["SecurityOpt"])
        parse_extra_hosts(host.get("ExtraHosts"))
        links = []
        for link in host.get("Links") or ():
            peer_name, alias = linksmod.parse(link)
            child = self._peer(peer_name, "link to")
            if network is not None and self.d.networks.drivers[network["Driver"]].namespace == "host" \
                    or child["HostConfig"].get("NetworkMode") == "host":
                raise InvalidParameter("conflicting options: host type networking can't be used "
                                       "with links. This would result in undefined behavior")
            links.append(linksmod.shown(child, full, alias))
        # a top-level Runtime is docker-py's create_container(runtime=): applied, not dropped
        runtime = self.d.runtimes.choose(host.get("Runtime") or body.get("Runtime") or "")
        for server in host.get("Dns") or ():
            try:
                ipaddress.ip_address(server)
            except (ValueError, TypeError):
                raise InvalidParameter(f"{server!r} is not an IP address (--dns)") from None
        parent = host.get("CgroupParent") or ""
        if ".." in parent.split("/") or ":" in parent:
            raise InvalidParameter(f"invalid cgroup parent {parent!r}")
        userns_mode = host.get("UsernsMode") or ""
        if userns_mode not in ("", "host"):
            raise InvalidParameter(f"invalid USER mode: {userns_mode!r} (valid: host, or empty)")
        self._check_ns_modes(host, not self.d.id_map.is_identity and userns_mode != "host")
        if host.get("Privileged") and not self.d.id_map.is_identity and userns_mode != "host":
            raise InvalidParameter("privileged mode is incompatible with user namespaces.  You must "
                                   "run the container in the host namespace when running "
                                   "privileged mode (--userns=host)")
        host_cfg = {"NetworkMode": network_mode, "AutoRemove": bool(host.get("AutoRemove")),
                    "LogConfig": {"Type": "json-file", "Config": {}},
                    "RestartPolicy": host.get("RestartPolicy") or {"Name": "no", "MaximumRetryCount": 0}}
        host_cfg.update({k: v for k, v in host.items() if k not in host_cfg or v})
        host_cfg["ShmSize"] = host.get("ShmSize") or specmod.DEFAULT_SHM_SIZE
        host_cfg["NetworkMode"] = network_mode  # container:<name> recorded by ID
        host_cfg["Links"] = links or None  # as dockerd shows them: /child:/parent/alias
        host_cfg["Runtime"] = runtime  # the exec driver that runs it
        specmod.check_host_config(host_cfg)
        warnings = resourcesmod.adapt(host_cfg, self.d.runtimes.drivers[runtime], self.graph)
        host_cfg["LogConfig"] = self._log_config(host.get("LogConfig") or {})
        # name and count are checked by the schema; null means the default
        policy = host_cfg["RestartPolicy"] = {
            "Name": host_cfg["RestartPolicy"].get("Name") or "no",
            "MaximumRetryCount": host_cfg["RestartPolicy"].get("MaximumRetryCount") or 0}
        if policy["Name"] != "no" and host_cfg["AutoRemove"]:
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")

        wanted = {**(img_cfg.get("Volumes") or {}), **(body.get("Volumes") or {})}
        mounts = await asyncio.to_thread(self.d.volumes.mounts_for, host_cfg, wanted)  # plugins
        mounts = self.d.volumes.volumes_from(host_cfg.get("VolumesFrom"), mounts, self._peer)

        cdir = os.path.join(self.root, cid)
        os.makedirs(cdir, exist_ok=True)
        top = self.images.top_cache_id(image_id)
        if getattr(self.d, "migrating", False):
            shutil.rmtree(cdir, ignore_errors=True)
            raise Conflict("a storage migration is in progress; try again when it is done")
        try:
            await asyncio.to_thread(storageopt.create_rw, self.graph, cid, top, host_cfg)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        now = time.time()
        c: dict[str, Any] = {
            "Id": cid, "Created": rfc3339(now), "Path": args[0], "Args": args[1:],
            "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
            "Image": image_id, "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
            "HostnamePath": os.path.join(cdir, "hostname"), "HostsPath": os.path.join(cdir, "hosts"),
            "LogPath": os.path.join(cdir, f"{cid}-json.log"), "Name": full, "RestartCount": 0,
            "Driver": self.graph.name, "Platform": "linux", "MountLabel": "", "ProcessLabel": "",
            "AppArmorProfile": "", "ExecIDs": None, "HostConfig": host_cfg,
            "GraphDriver": {"Name": self.graph.name, "Data": self.graph.metadata(cid)},
            "Mounts": mounts, "Config": cfg,
            "NetworkSettings": {},
            "_created": now, "_network": network["Name"] if network else "" if net_peer else network_mode,
            self.d.runtimes.record_key: runtime,
        }
        if net_peer is not None:
            # the peer's network namespace and its /etc files, as dockerd
            c["_networks"] = {}
            c.update({k: net_peer[k] for k in ("ResolvConfPath", "HostnamePath", "HostsPath")})
            c["NetworkSettings"] = self.d.networks.settings_for(c)
        else:
            self.d.networks.configure(c, network, body)
        self.save(c)
        self.d.emit("dockyard_container_created", container=self.public(c))
        self._event("create", c)
        return {"Id": cid, "Warnings": warnings}

    # -- prepare / start ------------------------------------------------------------------------
    async def _prepare(self, c: dict[str, Any]) -> None:
        """Mount the rootfs and hand the exec driver its spec (before attach or start)."""
        rt = self.rt(c["Id"])
        if rt.prepared:
            return
        cid = c["Id"]
        if getattr(self.d, "migrating", False):
            raise Conflict("a storage migration is in progress; try again when it is done")
        await asyncio.to_thread(self.d.volumes.prepare_binds, c)
        rootfs = await asyncio.to_thread(self.graph.get, cid)
        networked = volumes_mounted = False
        try:
            await asyncio.to_thread(self.d.volumes.mount, c)  # volumes with mount options
            volumes_mounted = True
            if not c.get("_volumes_copied") and c.get("Mounts"):
                await asyncio.to_thread(self.d.volumes.copy_up, c, rootfs)
                self.save(c)
            namespaces = self._own_namespaces(c)
            id_map = self.id_map(c)
            mode = c["HostConfig"].get("NetworkMode") or ""
            if mode.startswith("container:"):
                peer = self._cache.get(mode[len("container:"):])
                if peer is None or not peer["State"]["Running"] or not peer["State"].get("Pid"):
                    raise Conflict(f"cannot join network namespace of a non running container: "
                                   f"{mode[len('container:'):][:12]}")
                namespaces.append({"type": "network", "path": f"/proc/{peer['State']['Pid']}/ns/net"})
            else:
                # the sandbox is ready (endpoints plumbed, ports published) before the process runs
                networked = True
                namespaces += await self.d.networks.setup(c)
                self.save(c)
                c["_link_env"] = linksmod.environment(c, self._find_name, DEFAULT_NETWORKS[0])
                self._write_etc_files(c, id_map)
            spec = specmod.build(c, rootfs, namespaces, id_map,
                                 no_new_privs=self.d.config["no-new-privileges"],
                                 rt_budget=(self.d.config["cpu-rt-period"],
                                            self.d.config["cpu-rt-runtime"]))
            cfg = c["Config"]
            await self.drv(cid).create(cid, spec, log_path=c["LogPath"], tty=cfg["Tty"],
                                      open_stdin=cfg["OpenStdin"], stdin_once=cfg["StdinOnce"])
        except BaseException:
            if networked:
                await self.d.networks.teardown(c)
                self.save(c)
            if volumes_mounted:
                await asyncio.to_thread(self.d.volumes.unmount, c)
            await asyncio.to_thread(self.graph.put, cid)
            raise
        rt.prepared = True
        self.d.volumes.mount_events(c, "mount")

    #: HostConfig key -> namespace type, for --pid/--ipc/--uts host|container:<name>
    NS_MODES = (("PidMode", "pid"), ("IpcMode", "ipc"), ("UTSMode", "uts"))

    def _check_ns_modes(self, host: dict[str, Any], remapped: bool) -> None:
        for key, typ in self.NS_MODES:
            mode = host.get(key) or ""
            if mode in ("", "private", "shareable") or mode == "host":
                pass
            elif mode.startswith("container:") and typ != "uts":
                self._peer(mode[len("container:"):], f"join the {typ} namespace of")
            else:
                raise InvalidParameter(f"invalid {key[:-4].upper()} mode: {mode!r}")
            if remapped and mode and mode not in ("private", "shareable") and typ != "uts":
                raise InvalidParameter(f"--{typ}={mode} is not supported with user namespaces "
                                       f"(userns-remap); add --userns=host")

    def _own_namespaces(self, c: dict[str, Any]) -> list[dict[str, str]]:
        """The namespaces the container creates or joins, other than the network's: its own,
        the host's (``host``: none made), or a running container's (``container:<name>``);
        a cgroup namespace of its own with ``--cgroupns private``."""
        out = [{"type": "mount"}]
        if c["HostConfig"].get("CgroupnsMode") == "private":
            out.append({"type": "cgroup"})
        for key, typ in self.NS_MODES:
            mode = c["HostConfig"].get(key) or ""
            if mode == "host":
                continue
            if mode.startswith("container:"):
                peer = self.get(mode[len("container:"):])
                if not peer["State"]["Running"] or not peer["State"].get("Pid"):
                    raise Conflict(f"cannot join the {typ} namespace of container "
                                   f"{peer['Name'][1:]}: it is not running")
                out.append({"type": typ, "path":
                            f"/proc/{peer['State']['Pid']}/ns/{ns.NAMESPACE_FILES[typ]}"})
                continue
            out.append({"type": typ})
        return out

    #: json-file options dockerd accepts (max-size/max-file are applied; the rest are taken
    #: and have no effect here)
    LOG_OPTS = ("max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex",
                "tag")

    #: dockerd's other log drivers: the same words, and which ones this engine has
    DOCKERD_LOG_DRIVERS = ("local", "syslog", "journald", "gelf", "fluentd", "awslogs",
                           "splunk", "etwlogs", "gcplogs", "logentries")

    def _log_config(self, given: dict[str, Any]) -> dict[str, Any]:
        """``HostConfig.LogConfig``: ``json-file`` (the default, with the daemon's log-opts
        under the container's) or ``none``; InvalidParameter for anything else."""
        typ = given.get("Type") or self.d.config.get("log-driver") or "json-file"
        if typ not in ("json-file", "none"):  # dockerd's words (docker-py checks them)
            known = typ in self.DOCKERD_LOG_DRIVERS
            raise InvalidParameter(f"logger: no log driver named '{typ}' is registered"
                                   + (" (this engine has json-file and none)" if known else ""))
        opts = {**(self.d.config.get("log-opts") or {} if typ == "json-file" else {}),
                **(given.get("Config") or {})}
        for key in opts:
            if typ == "none" or key not in self.LOG_OPTS:
                raise InvalidParameter(f"unknown log opt '{key}' for {typ} log driver")
        try:
            size = units.ram_in_bytes(opts["max-size"]) if "max-size" in opts else -1
        except ValueError:
            raise InvalidParameter(f"invalid max-size {opts['max-size']!r}") from None
        if size == 0:
            raise InvalidParameter("max-size must be a positive number")
        files = opts.get("max-file", "1")
        if not files.isdigit() or int(files) < 1:
            raise InvalidParameter("max-file cannot be less than 1")
        # as dockerd: max-file without max-size is taken, and rotates nothing (no size cap)
        if opts.get("compress", "false") not in ("false", "0"):
            raise InvalidParameter("compress is not supported by this engine's json-file driver")
        return {"Type": typ, "Config": opts}

    def _peer(self, ref: str, what: str) -> dict[str, Any]:
        """A container another one refers to at create. Missing: a 400, never a 404 — the
        docker CLI answers any 404 from create by pulling the image, and retrying."""
        try:
            return self.get(ref)
        except NotFound:
            raise InvalidParameter(f"cannot {what} {ref}: No such container: {ref}") from None

    def _start_health(self, c: dict[str, Any]) -> None:
        """Run the container's health check, if it has one, while it runs."""
        rt = self.rt(c["Id"])
        if rt.health is not None:
            rt.health.cancel()
            rt.health = None
        check = c["Config"].get("Healthcheck")
        try:
            check = health.effective(None, check)
        except InvalidParameter:
            check = None
        if check is None:
            c["State"].pop("Health", None)
            return
        rt.health = asyncio.create_task(health.HealthMonitor(self, c["Id"], check).run(),
                                        name=f"health-{c['Id'][:12]}")

    def _event(self, action: str, c: dict[str, Any], **extra: str) -> None:
        """A container event with dockerd's attributes: the container's labels, its image and
        name, then what the action adds (``exitCode``, ``signal``...)."""
        attrs = {**(c["Config"].get("Labels") or {}), "image": c["Config"]["Image"],
                 "name": c["Name"][1:], **extra}
        self.d.event("container", action, c["Id"], attrs)

    def id_map(self, c: dict[str, Any]) -> IDMap:
        """The user-namespace map container ``c`` runs with: the daemon's (``userns-remap``),
        unless it asked for the host's (``--userns=host``)."""
        if c["HostConfig"].get("UsernsMode") == "host":
            return IDMap.identity()
        return self.d.id_map

    def _write_etc_files(self, c: dict[str, Any], id_map: IDMap) -> None:
        # rewritten on every start, so a crash cannot lose them: no fsync (six of them, on the
        # event loop, were the largest cost on the start path in a cProfile of the daemon)
        hostname = c["Config"]["Hostname"]
        files = ((c["HostnamePath"], hostname + "\n"), (c["HostsPath"], self.d.networks.hosts_file(c)),
                 (c["ResolvConfPath"], self.d.networks.resolv_conf(c)))
        for path, text in files:
            atomic_write(path, text.encode(), durable=False)
            if not id_map.is_identity:  # the container's root may edit them, as in Docker
                os.chown(path, *id_map.root)

    async def start(self, ref: str, _policy: bool = False) -> None:
        """Start the container's process. ``_policy``: a restart policy's start, which gives way
        to a user's stop that arrives before or while it runs. As dockerd, a container that
        could not start records why (``State.Error``) and, with ``AutoRemove``, is removed
        before the error is answered (``docker run --rm`` waits for that)."""
        c = self.get(ref)
        try:
            await self._start(c, _policy)
        except StartFailed as failed:
            if c["HostConfig"].get("AutoRemove"):
                await self._auto_remove(c["Id"])
            raise failed.error from None

    async def _start(self, c: dict[str, Any], _policy: bool) -> None:
        cid = c["Id"]
        rt = self.rt(cid)
        async with rt.lock:
            if cid not in self._cache:  # removed while we waited for the lock
                raise NotFound(f"No such container: {cid}")
            if _policy and (c.get("_manually_stopped") or not c["State"].get("Restarting")):
                return
            if c["State"]["Running"]:
                raise NotModified("container already started")
            if rt.stopping:
                raise Conflict(f"container {cid[:12]} is being removed")
            now = time.time()
            try:
                await self._prepare(c)
                await connect_pending(rt.pending, self.drv(cid), cid)
                pid = await self.drv(cid).start(cid)
            except DockyardError as exc:
                end_pending(rt.pending)
                if isinstance(exc, ExecError):
                    await self._record_exit(c, ExitStatus(exc.exit_code, time.time(), error=exc.message))
                else:
                    record_start_failure(c, exc)
                    self.save(c)
                raise StartFailed(exc) from exc
            # FinishedAt keeps the last exit's time, as dockerd's SetRunning
            c["State"].update(Status="running", Running=True, Paused=False, Restarting=False,
                              Pid=pid, ExitCode=0, Error="", StartedAt=rfc3339(now),
                              OOMKilled=False)
            if not _policy:
                c.pop("_manually_stopped", None)
            self.save(c)
            rt.watcher = asyncio.create_task(self._watch(cid), name=f"watch-{cid[:12]}")
            await self._initial_console_size(c)
            self._start_health(c)
            if _policy and c.get("_manually_stopped"):  # stopped while we were starting it
                with contextlib.suppress(DockyardError):
                    await self.drv(cid).kill(cid, signal_mod.SIGKILL)
        self.d.emit("dockyard_container_started", container=self.public(c))
        self._event("start", c)

    async def _initial_console_size(self, c: dict[str, Any]) -> None:
        """``HostConfig.ConsoleSize`` ([height, width], what ``docker run -t`` sends): the TTY's
        size right after start, before the client's own resize."""
        size = c["HostConfig"].get("ConsoleSize") or []
        if c["Config"]["Tty"] and len(size) == 2 and all(size):
            with contextlib.suppress(DockyardError, NotImplementedError):
                await self.drv(c["Id"]).resize(c["Id"], size[0], size[1])

    async def _watch(self, cid: str) -> None:
        try:
            status = await self.drv(cid).wait(cid)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - the driver lost it: record it as dead
            log.exception("waiting for %s failed", cid[:12])
            status = ExitStatus(255, time.time(), error=str(exc))
        c = self._cache.get(cid)
        if c is None:
            return
        rt = self.rt(cid)
        async with rt.lock:
            if cid not in self._cache:  # removed while we waited: nothing to record
                return
            # decided before anything awaits, so a stop arriving meanwhile sees "restarting"
            restart = not c["HostConfig"].get("AutoRemove") and self._should_restart(c, status.exit_code)
            await self._record_exit(c, status, restarting=restart)
        if c["HostConfig"].get("AutoRemove"):
            await self._auto_remove(cid)
        elif restart:
            await self._restart_later(c)

    def _should_restart(self, c: dict[str, Any], exit_code: int) -> bool:
        """Docker's restart policies: ``always`` and ``unless-stopped`` restart unless the user
        stopped or killed the container; ``on-failure[:N]`` only after a non-zero exit, N times."""
        policy = c["HostConfig"].get("RestartPolicy") or {}
        name = policy.get("Name") or "no"
        if name == "no" or c.get("_manually_stopped") or self.rt(c["Id"]).stopping:
            return False
        if name == "on-failure":
            limit = int(policy.get("MaximumRetryCount") or 0)
            return exit_code != 0 and (limit == 0 or c["RestartCount"] < limit)
        return name in ("always", "unless-stopped")

    async def _restart_later(self, c: dict[str, Any]) -> None:
        cid = c["Id"]
        rt = self.rt(cid)
        ran = _parse_time(c["State"]["FinishedAt"]) - _parse_time(c["State"]["StartedAt"])
        # as dockerd: 100 ms, doubled while it keeps dying within 10 s of starting, at most 1 min
        rt.restart_delay = 0.1 if ran >= 10 or rt.restart_delay == 0 else min(rt.restart_delay * 2, 60.0)
        await asyncio.sleep(rt.restart_delay)
        c = self._cache.get(cid)
        if c is None or not c["State"]["Restarting"] or rt.stopping or c.get("_manually_stopped"):
            return
        c["RestartCount"] += 1
        try:
            await self.start(cid, _policy=True)
        except DockyardError as exc:
            log.warning("restart of %s failed: %s", cid[:12], exc)
            if cid in self._cache:  # not removed meanwhile
                c["State"].update(Status="exited", Restarting=False)
                self.save(c)

    async def _auto_remove(self, cid: str) -> None:
        if cid not in self._cache:
            return
        try:
            await self.remove(cid, force=True)
        except DockyardError:
            log.exception("auto-remove of %s failed", cid[:12])

    async def _record_exit(self, c: dict[str, Any], status: ExitStatus,
                           restarting: bool = False) -> None:
        cid = c["Id"]
        rt = self.rt(cid)
        if rt.health is not None:
            rt.health.cancel()
            rt.health = None
        c["State"].update(Status="restarting" if restarting else "exited", Restarting=restarting,
                          Running=False, Paused=False, Pid=0,
                          ExitCode=status.exit_code, OOMKilled=status.oom_killed,
                          Error=status.error, FinishedAt=rfc3339(status.finished_at))
        self.save(c)
        if self.d.networks.set_up(c):
            await self.d.networks.teardown(c)
            self.save(c)
        if rt.prepared:
            rt.prepared = False
            await asyncio.to_thread(self.d.volumes.unmount, c)
            try:
                await asyncio.to_thread(self.graph.put, cid)
            except Exception:  # noqa: BLE001
                log.exception("unmounting %s failed", cid[:12])
            self.d.volumes.mount_events(c, "unmount")
        waiters, rt.exit_waiters = rt.exit_waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(status.exit_code)
        self.d.emit("dockyard_container_exited", container=self.public(c), exit_code=status.exit_code)
        self._event("die", c, exitCode=str(status.exit_code))

    # -- stop / kill / wait ---------------------------------------------------------------------
    async def kill(self, ref: str, sig: str | int | None) -> None:
        """Send ``sig``; as dockerd, a SIGKILL is answered once the container has exited (up
        to 10 s): clients read ``State.Running`` right after."""
        c = self.get(ref)
        num = parse_signal(sig)
        if not c["State"]["Running"]:
            raise Conflict(f"cannot kill container: {ref}: container {c['Id']} is not running")
        self._mark_manually_stopped(c)
        exited = self._exit_future(c) if num == signal_mod.SIGKILL else None
        try:
            await self.drv(c["Id"]).kill(c["Id"], num)
        except BaseException:
            if exited is not None:
                exited.cancel()
            raise
        self._event("kill", c, signal=str(num))
        if exited is not None:
            try:
                await asyncio.wait_for(exited, KILL_WAIT)
            except asyncio.TimeoutError:
                log.warning("container %s did not exit within %d s of SIGKILL", c["Id"][:12], KILL_WAIT)

    async def stop(self, ref: str, timeout: int | None, sig: str | None = None) -> None:
        c = self.get(ref)
        # the user wants it stopped: no restart policy brings it back, even one in flight
        self._mark_manually_stopped(c)
        if c["State"].get("Restarting"):  # waiting out the restart back-off: just cancel it
            c["State"].update(Status="exited", Restarting=False)
            self.save(c)
            return
        if not c["State"]["Running"]:
            raise NotModified("container already stopped")
        if timeout is None:
            timeout = c["Config"].get("StopTimeout", 10)
        num = parse_signal(sig or c["Config"].get("StopSignal") or "SIGTERM")
        fut = self._exit_future(c)
        with contextlib.suppress(DockyardError):
            await self.drv(c["Id"]).kill(c["Id"], num)
            self._event("kill", c, signal=str(num))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout if timeout >= 0 else None)
        except asyncio.TimeoutError:
            with contextlib.suppress(DockyardError):
                await self.drv(c["Id"]).kill(c["Id"], signal_mod.SIGKILL)
                self._event("kill", c, signal=str(int(signal_mod.SIGKILL)))
            await fut
        self._event("stop", c)

    def _mark_manually_stopped(self, c: dict[str, Any]) -> None:
        # remembered across daemon restarts: ``unless-stopped`` must not bring it back
        if not c.get("_manually_stopped"):
            c["_manually_stopped"] = True
            self.save(c)

    def _exit_future(self, c: dict[str, Any]) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.rt(c["Id"]).exit_waiters.append(fut)
        return fut

    def wait_future(self, ref: str, condition: str) -> asyncio.Future[int]:
        """A future of the exit code for ``condition`` (not-running, next-exit, removed)."""
        if condition not in ("not-running", "next-exit", "removed", ""):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        c = self.get(ref)
        loop = asyncio.get_running_loop()
        if condition == "removed":
            fut: asyncio.Future[int] = loop.create_future()
            self.rt(c["Id"]).remove_waiters.append(fut)
            return fut
        if condition in ("not-running", "") and not c["State"]["Running"]:
            fut = loop.create_future()
            fut.set_result(c["State"]["ExitCode"])
            return fut
        return self._exit_future(c)

    def _find_name(self, name: str) -> dict[str, Any] | None:
        with contextlib.suppress(NotFound):
            return self.get(name)
        return None

    # -- remove ---------------------------------------------------------------------------------
    async def remove_link(self, name: str) -> None:
        """``docker rm --link /web/db``: :func:`dockyard.core.links.remove`."""
        linksmod.remove(self, name)

    async def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        """``docker rm [-f] [-v]``: ``volumes`` (and ``--rm``) also removes the container's
        anonymous volumes."""
        c = self.get(ref)
        cid = c["Id"]
        rt = self.rt(cid)
        check_removable(c, ref, force)
        if c["State"].get("Restarting"):  # waiting out the restart back-off: no more restarts
            self._mark_manually_stopped(c)
            c["State"].update(Status="exited", Restarting=False)
            self.save(c)
        if c["State"]["Running"]:
            rt.stopping = True
            fut = self._exit_future(c)
            with contextlib.suppress(DockyardError):
                await self.drv(cid).kill(cid, signal_mod.SIGKILL)
            self._event("kill", c, signal=str(int(signal_mod.SIGKILL)))
            try:
                await asyncio.wait_for(fut, 30)
            except asyncio.TimeoutError:
                raise DockyardError(f"container {cid[:12]} did not exit after SIGKILL") from None
        async with rt.lock:
            if cid not in self._cache:
                return
            rt.stopping = True
            with contextlib.suppress(NotFound):
                await self.drv(cid).delete(cid)
            if self.d.networks.set_up(c):
                await self.d.networks.teardown(c)  # prepared (attached) but never started
            if rt.prepared:
                rt.prepared = False
                await asyncio.to_thread(self.d.volumes.unmount, c)
                await asyncio.to_thread(self.graph.put, cid)
                self.d.volumes.mount_events(c, "unmount")
            if self.graph.exists(cid):
                await asyncio.to_thread(self.graph.remove, cid)
            self.forget(c, volumes)
        end_pending(rt.pending)
        self._rt.pop(cid, None)
        for fut in rt.remove_waiters:
            if not fut.done():
                fut.set_result(c["State"]["ExitCode"])
        self.d.emit("dockyard_container_removed", container_id=cid)
        self._event("destroy", c)

    def forget(self, c: dict[str, Any], volumes: bool = False) -> None:
        """Drop a container whose writable layer is gone: its record, directory, exec records
        and (with ``volumes`` or ``--rm``) its anonymous volumes."""
        cid = c["Id"]
        self.state.delete_container(cid)
        self._cache.pop(cid, None)
        self.d.volumes.release(c, volumes or bool(c["HostConfig"].get("AutoRemove")))
        self.d.execs.forget_container(cid)
        shutil.rmtree(os.path.join(self.root, cid), ignore_errors=True)

    # -- pause / stats ----------------------------------------------------------------------------
    async def pause(self, ref: str) -> None:
        c = self.get(ref)
        if not c["State"]["Running"]:
            raise Conflict(f"Container {c['Id']} is not running")
        if c["State"]["Paused"]:
            raise Conflict(f"Container {c['Id']} is already paused")
        await self.drv(c["Id"]).pause(c["Id"])
        c["State"].update(Paused=True, Status="paused")
        self.save(c)
        self._event("pause", c)

    async def unpause(self, ref: str) -> None:
        c = self.get(ref)
        if not c["State"]["Paused"]:
            raise Conflict(f"Container {c['Id']} is not paused")
        await self.drv(c["Id"]).resume(c["Id"])
        c["State"].update(Paused=False, Status="running")
        self.save(c)
        self._event("unpause", c)

    # -- update -----------------------------------------------------------------------------------
    #: the ``UpdateConfig`` fields this engine applies (dockerd's others are accepted at zero)
    UPDATE_INT_KEYS = ("Memory", "MemorySwap", "CpuShares", "CpuQuota", "CpuPeriod", "NanoCpus",
                       "PidsLimit", "BlkioWeight", "MemoryReservation", "CpuRealtimePeriod",
                       "CpuRealtimeRuntime")

    async def update(self, ref: str, body: Any) -> dict[str, Any]:
        """``docker update``: new resource limits (applied at once to a running container, kept
        for later starts) and restart policy. ``body``: checked by
        :class:`dockyard.core.schema.ContainerUpdate`."""
        c = self.get(ref)
        host = c["HostConfig"]
        new: dict[str, Any] = {key: body[key] for key in self.UPDATE_INT_KEYS if body.get(key)}
        for key in ("CpusetCpus", "CpusetMems"):
            if body.get(key):
                new[key] = str(body[key])
        if new.get("NanoCpus") and (new.get("CpuQuota") or new.get("CpuPeriod")):
            raise InvalidParameter("Conflicting options: Nano CPUs and CPU Period/Quota cannot "
                                   "both be set")
        policy = body.get("RestartPolicy")
        if policy and policy.get("Name"):
            if policy["Name"] != "no" and host.get("AutoRemove"):
                raise InvalidParameter("Restart policy cannot be updated because AutoRemove is "
                                       "enabled for the container")
        updated = {**host, **new}
        if new.get("NanoCpus"):
            updated.pop("CpuQuota", None)
            updated.pop("CpuPeriod", None)
        warnings = resourcesmod.check_update(host, new, updated, self.drv(c["Id"]))
        if new and (c["State"]["Running"] or self.rt(c["Id"]).prepared):
            await self.drv(c["Id"]).update(c["Id"], specmod.resources_of(updated))
        if policy and policy.get("Name"):
            updated["RestartPolicy"] = {"Name": policy["Name"],
                                        "MaximumRetryCount": int(policy.get("MaximumRetryCount") or 0)}
        c["HostConfig"] = updated
        self.save(c)
        self._event("update", c)
        return {"Warnings": warnings}

    # -- rename / prune -------------------------------------------------------------------------
    async def rename(self, ref: str, new: str) -> None:
        if not new or not names.VALID_NAME.match(new):
            raise InvalidParameter(f"Invalid container name ({new}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")
        c = self.get(ref)
        full = "/" + new.lstrip("/")
        if full == c["Name"]:
            raise InvalidParameter("Renaming a container with the same name as its current name")
        for other in self._cache.values():
            if other["Name"] == full:
                raise Conflict(f'Conflict. The container name "{full}" is already in use by '
                               f'container "{other["Id"]}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")
        old = c["Name"]
        c["Name"] = full
        self.save(c)
        self._event("rename", c, oldName=old)

    async def prune(self, args: Args) -> tuple[list[str], int]:
        """``docker container prune``: remove every container not running that the ``until``,
        ``label`` and ``label!`` filters select; the ids removed and the bytes their writable
        layers held."""
        ok = prune_matcher(args)
        deleted, reclaimed = [], 0
        for c in list(self._cache.values()):
            if c["State"]["Running"] or c["State"].get("Restarting"):
                continue
            if not ok(c["_created"], c["Config"].get("Labels")):
                continue
            _top, parent = self._image_top(c)
            try:
                size = await asyncio.to_thread(self.graph.diff_size, c["Id"], parent)
            except DockyardError:
                size = 0
            try:
                await self.remove(c["Id"])
            except DockyardError as exc:  # as dockerd: one that cannot go is skipped
                log.warning("prune: container %s not removed: %s", c["Id"][:12], exc)
                continue
            reclaimed += size
            deleted.append(c["Id"])
        return deleted, reclaimed

    # -- docker cp ------------------------------------------------------------------------------
    async def _view(self, ref: str) -> tuple[dict[str, Any], Any]:
        """``(container, view)``: the container's files as it sees them, its volumes, bind
        mounts, ``/etc`` files (and, running, its tmpfs mounts) at their places (core.cpview).
        The rootfs stays mounted until the view is closed (``view.close()``, in a thread)."""
        from . import cpview
        c = self.get(ref)
        cid = c["Id"]
        loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.d.volumes.prepare_binds, c)
        user = f"{cid}/cp-{secrets.token_hex(4)}"  # volumes with options are mounted for it
        await asyncio.to_thread(self.d.volumes.mount, c, user)
        try:
            root = await asyncio.to_thread(self.graph.get, cid)
        except BaseException:
            await asyncio.to_thread(self.d.volumes.unmount, c, user)
            raise
        running = bool(c["State"]["Running"] and c["State"].get("Pid"))
        id_map = self.id_map(c)
        view = cpview.ContainerView(root, cpview.mounts_of(c, running),
                                    c["State"]["Pid"] if running else 0,
                                    None if id_map.is_identity else id_map.root)
        try:
            await asyncio.to_thread(view.open)
        except BaseException:
            await asyncio.to_thread(self.graph.put, cid)
            await asyncio.to_thread(self.d.volumes.unmount, c, user)
            raise
        self.d.volumes.mount_events(c, "mount")
        view.on_close(lambda: self.graph.put(cid))
        view.on_close(lambda: self.d.volumes.unmount(c, user))
        view.on_close(lambda: loop.call_soon_threadsafe(self.d.volumes.mount_events, c, "unmount"))
        return c, view

    async def archive_stat(self, ref: str, path: str) -> str:
        from . import archive
        _c, view = await self._view(ref)
        try:
            return await asyncio.to_thread(view.call, archive.stat_header, view.root, path)
        finally:
            await asyncio.to_thread(view.close)

    async def archive_get(self, ref: str, path: str) -> tuple[str, Any]:
        """``(stat header, tar stream)``; the view stays open until the stream is done."""
        from . import archive
        _c, view = await self._view(ref)
        try:
            header = await asyncio.to_thread(view.call, archive.stat_header, view.root, path)
            resolved = await asyncio.to_thread(view.call, archive.resolve_out, view.root, path)
            # the writer is started here, in the host's mount namespace (a thread is born in
            # its creator's): it reads through the view's descriptors, and its closing the view
            # (which releases the rootfs) must unmount in the host's namespace
            stream = await asyncio.to_thread(archive.tar_stream, resolved, view.close,
                                             getattr(self.graph, "id_map", None))
        except BaseException:
            await asyncio.to_thread(view.close)
            raise
        return header, stream

    async def archive_put(self, ref: str, path: str, tar_path: str,
                          no_overwrite_dir_nondir: bool = False, copy_uid_gid: bool = False) -> None:
        """Unpack the tar file ``tar_path`` (maybe compressed; checked whole before anything
        is written) into directory ``path`` of the container, as the container sees it (its
        volumes, bind mounts...: core.cpview). ``copy_uid_gid``: dockerd then chowns every entry
        to the container's ``User``; with no ``User`` that is the default."""
        from . import archive, cpview
        c = self.get(ref)
        if copy_uid_gid and (c.get("Config") or {}).get("User"):
            raise InvalidParameter("copyUIDGID (docker cp -a) is not supported for a container "
                                   "with a User: entries keep the owners the archive records")
        c, view = await self._view(ref)

        def run(root: str) -> int:
            cpview.check_writable(c, root, path)  # read-only volume or rootfs, as dockerd
            return archive.extract_in(root, path, tar_path, getattr(self.graph, "id_map", None),
                                      no_overwrite_dir_nondir=no_overwrite_dir_nondir)
        try:
            await asyncio.to_thread(view.call, run, view.root)
        finally:
            await asyncio.to_thread(view.close)

    # -- changes / commit -----------------------------------------------------------------------
    def _image_top(self, c: dict[str, Any]) -> tuple[str | None, str | None]:
        """``(chain id, graph cache id)`` of the top layer of the container's image."""
        top = self.images.get(c["Image"])["top_layer"]
        return top, (self.images.layer(top)["cache_id"] if top else None)

    async def changes(self, ref: str) -> list[dict[str, Any]]:
        """``docker diff``: what the container changed in its image's file system."""
        from .initlayer import hide_init_layer
        c = self.get(ref)
        _top, parent = self._image_top(c)
        return hide_init_layer(await asyncio.to_thread(self.graph.changes, c["Id"], parent))

    async def commit(self, ref: str, *, repo: str = "", tag: str = "", comment: str = "",
                     author: str = "", changes: list[str] | None = None,
                     config: dict[str, Any] | None = None, pause: bool = True) -> str:
        """``docker commit``: a new image whose top layer is the container's changes (as a
        layer tar whose blob is kept, so it can be pushed and saved as is) and whose config is
        the container's, with ``config`` overrides and Dockerfile-style ``changes`` on top."""
        from .images import apply_changes

        c = self.get(ref)
        cid = c["Id"]
        top, parent = self._image_top(c)
        paused = False
        if pause and c["State"]["Running"] and not c["State"]["Paused"]:
            with contextlib.suppress(NotImplementedError, DockyardError):
                await self.drv(cid).pause(cid)
                paused = True
        try:
            def layer() -> str:
                stream = self.graph.diff(cid, parent)
                try:
                    return self.images.register_layer(stream, top, keep_blob=True)
                finally:
                    stream.close()
            chain = await asyncio.to_thread(layer)
        finally:
            if paused:
                with contextlib.suppress(DockyardError):
                    await self.drv(cid).resume(cid)
        base = self.images.config(c["Image"])
        ccfg = {k: v for k, v in c["Config"].items()
                if k in ("User", "ExposedPorts", "Env", "Cmd", "WorkingDir", "Entrypoint",
                         "Volumes", "Labels", "StopSignal", "OnBuild", "Shell")
                and v not in (None, "", {}, [])}
        ccfg.update({k: v for k, v in (config or {}).items() if v is not None})
        apply_changes(ccfg, changes or [])
        created = rfc3339()
        new = dict(base)
        new.update(created=created, config=ccfg, container=cid)
        if author:
            new["author"] = author
        new["rootfs"] = {"type": "layers",
                         "diff_ids": list((base.get("rootfs") or {}).get("diff_ids") or [])
                         + [self.images.layer(chain)["diff_id"]]}
        new["history"] = list(base.get("history") or []) + [
            {"created": created, "created_by": " ".join([c["Path"], *c["Args"]]),
             **({"comment": comment} if comment else {}), **({"author": author} if author else {})}]
        image_id = await asyncio.to_thread(self.images.create_image, new, chain)
        # as dockerd: inspect's Parent, and ps --filter ancestor= finds the image's containers
        self.images.set_parent(image_id, c["Image"])
        tags = []
        if repo:
            from . import reference
            r = reference.parse(repo, default_tag=False)
            tags.append(self.images.tag(image_id, str(r.with_tag(tag or r.tag or "latest"))))
        self.d.emit("dockyard_image_built", image_id=image_id, tags=tags)
        self._event("commit", c, imageID=image_id)
        return image_id

    # -- attach / logs --------------------------------------------------------------------------
    async def attach(self, ref: str, stdin: bool, stdout: bool, stderr: bool,
                     stream: bool = True) -> tuple[dict[str, Any], AttachStreams]:
        """An attach session; without ``stream`` (``logs=1`` alone) one with no live output."""
        c = self.get(ref)
        check_attachable(c, ref)
        rt = self.rt(c["Id"])
        stdin = stdin and c["Config"]["OpenStdin"]
        self._event("attach", c)
        if not stream:
            return c, no_live_output()
        if c["State"]["Running"]:
            await exit_being_recorded(self.drv(c["Id"]), c, self._exit_future(c))
        async with rt.lock:
            if not c["State"]["Running"]:
                try:
                    await self._prepare(c)
                except DockyardError as exc:  # the start will say why (see core.attach)
                    log.info("attach to %s before a start that cannot work: %s", c["Id"][:12], exc)
                    pending = PendingAttach(stdin, stdout, stderr)
                    rt.pending.append(pending)
                    return c, pending
            streams = await self.drv(c["Id"]).attach(c["Id"], stdin=stdin, stdout=stdout, stderr=stderr)
        return c, streams

    async def resize(self, ref: str, h: int, w: int) -> None:
        c = self.get(ref)
        if not c["State"]["Running"]:
            raise Conflict(f"Container {c['Id'][:12]} is not running")
        await self.drv(c["Id"]).resize(c["Id"], h, w)
        self._event("resize", c, height=str(h), width=str(w))

    async def logs(self, ref: str, *, stdout: bool, stderr: bool, follow: bool, tail: str,
                   since: float, until: float, timestamps: bool) -> AsyncIterator[tuple[int, bytes]]:
        """Yield ``(stream, bytes)`` from the json-file log; with ``follow`` until the container stops."""
        c = self.get(ref)
        if (c["HostConfig"].get("LogConfig") or {}).get("Type") == "none":
            raise InvalidParameter("configured logging driver does not support reading")
        path = c["LogPath"]
        want = {"stdout": stdout, "stderr": stderr}
        try:
            f = open(path, "rb")
        except FileNotFoundError:
            return
        with contextlib.ExitStack() as stack:
            stack.callback(lambda: f.close())
            # rotated files first, oldest first (max-file), then the current one
            lines = []
            for i in range(int((c["HostConfig"].get("LogConfig") or {}).get("Config", {})
                               .get("max-file") or 1) - 1, 0, -1):
                with contextlib.suppress(FileNotFoundError), open(f"{path}.{i}", "rb") as old:
                    lines += [line for line in old.readlines() if line.endswith(b"\n")]
            lines += f.readlines()
            if not lines or lines[-1].endswith(b"\n"):
                partial = b""
            else:
                partial = lines.pop()
            if tail not in ("", "all"):
                try:
                    n = int(tail)
                except ValueError:
                    raise InvalidParameter(f"invalid tail value {tail!r}") from None
                lines = lines[-n:] if n > 0 else []
            for line in lines:
                item = self._log_item(line, want, since, until, timestamps)
                if item:
                    yield item
            if not follow:
                return
            buf = partial
            while True:
                chunk = f.read()
                if chunk:
                    buf += chunk
                    *complete, buf = buf.split(b"\n")
                    for line in complete:
                        item = self._log_item(line, want, since, until, timestamps)
                        if item:
                            yield item
                    continue
                try:  # rotated (renamed or truncated): go on with the file of that name
                    st = os.stat(path)
                    if st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell():
                        f.close()
                        f = open(path, "rb")
                        buf = b""
                        continue
                except FileNotFoundError:
                    pass
                cur = self._cache.get(c["Id"])
                if cur is None or not cur["State"]["Running"]:
                    break
                await asyncio.sleep(0.05)

    @staticmethod
    def _log_item(line: bytes, want: dict[str, bool], since: float, until: float,
                  timestamps: bool) -> tuple[int, bytes] | None:
        try:
            rec = json.loads(line)
        except ValueError:
            return None
        stream = rec.get("stream", "stdout")
        if not want.get(stream):
            return None
        ts = rec.get("time", "")
        if since or until:
            t = _parse_time(ts)
            if (since and t < since) or (until and t > until):
                return None
        data = rec.get("log", "").encode("utf-8", "surrogateescape")
        if timestamps:
            data = ts.encode() + b" " + data
        return (1 if stream == "stdout" else 2), data

    # -- daemon start / stop --------------------------------------------------------------------
    async def restore(self) -> None:
        """Re-adopt containers still running in the exec driver; record the ones that died."""
        held, owner = await self.d.runtimes.restore()
        plugins = {pid: held.pop(pid) for pid in self.d.plugin_runner.ids() if pid in held}
        for c in list(self._cache.values()):
            cid = c["Id"]
            proc = held.pop(cid, None)
            if c["State"]["Running"]:
                if proc is not None and proc.status in ("running", "paused"):
                    rt = self.rt(cid)
                    await asyncio.to_thread(self.graph.get, cid)
                    rt.prepared = True
                    c["State"]["Pid"] = proc.pid
                    self.save(c)
                    rt.watcher = asyncio.create_task(self._watch(cid))
                    self._start_health(c)
                    log.info("re-adopted running container %s", cid[:12])
                else:
                    self.rt(cid).prepared = proc is not None
                    if proc is not None:
                        await asyncio.to_thread(self.graph.get, cid)
                    status = proc.exit if proc is not None and proc.exit else \
                        ExitStatus(255, time.time(), error="container lost while the daemon was down")
                    await self._record_exit(c, status)
                    if c["HostConfig"].get("AutoRemove"):
                        await self.remove(cid, force=True)
            elif proc is not None:
                with contextlib.suppress(DockyardError):
                    await self.drv(cid).delete(cid)
        running = [c for c in self._cache.values() if c["State"]["Running"]]
        await asyncio.to_thread(self.d.volumes.restore, running)
        await self.d.networks.reconcile(running)
        for c in list(self._cache.values()):
            if c["State"].get("Restarting"):
                c["State"].update(Status="exited", Restarting=False)
                self.save(c)
            if not c["State"]["Running"] and c["HostConfig"].get("RestartPolicy", {}).get("Name") in (
                    "always", "unless-stopped") and not c.get("_manually_stopped"):
                try:
                    await self.start(c["Id"])
                    log.info("restarted %s (restart policy)", c["Id"][:12])
                except DockyardError as exc:
                    log.warning("restart policy: starting %s failed: %s", c["Id"][:12], exc)
        for cid in held:  # a driver holds containers we have no record of
            log.warning("deleting unknown container %s found in exec driver %s", cid[:12], owner[cid].name)
            with contextlib.suppress(DockyardError):
                await owner[cid].delete(cid)
        await self.d.plugin_runner.restore(plugins)  # managed plugins run in the driver too

    async def shutdown(self) -> None:
        for rt in self._rt.values():
            for task in (rt.watcher, rt.health):
                if task is not None:
                    task.cancel()


def _parse_time(ts: str) -> float:
    try:
        base, _, frac = ts.rstrip("Z").partition(".")
        dt = datetime.datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
        return dt.timestamp() + (float("0." + frac) if frac else 0.0)
    except ValueError:
        return 0.0


def summary(c: dict[str, Any], images: Any) -> dict[str, Any]:
    """The ``GET /containers/json`` shape of a container record."""
    st = c["State"]
    now = time.time()
    if st["Running"]:
        status = "Up " + units.human_duration(now - _parse_time(st["StartedAt"]))
        if st["Paused"]:
            status += " (Paused)"
        elif st.get("Health"):
            hs = st["Health"].get("Status")
            status += " (health: starting)" if hs == "starting" else f" ({hs})"
    elif st["Status"] == "exited":
        status = f"Exited ({st['ExitCode']}) {units.human_duration(now - _parse_time(st['FinishedAt']))} ago"
    else:
        status = st["Status"].capitalize()
    cmd = " ".join([c["Path"], *c["Args"]])
    image = c["Config"]["Image"]
    return {
        "Id": c["Id"], "Names": [c["Name"]], "Image": image, "ImageID": c["Image"],
        "Command": cmd, "Created": int(c["_created"]), "Ports": NetworkService.port_summary(c),
        "Labels": c["Config"].get("Labels") or {}, "State": st["Status"], "Status": status,
        "HostConfig": {"NetworkMode": c["HostConfig"].get("NetworkMode", "default")},
        "NetworkSettings": {"Networks": c["NetworkSettings"].get("Networks", {})},
        "Mounts": c.get("Mounts", []),
    }
