"""Docker Engine managed plugins (``docker plugin create/ls/inspect/set/rm/enable/disable``), as
moby's ``plugin`` package keeps them: each plugin is a root file system and a ``config.json``
(moby's ``PluginConfig``), stored under ``<data-root>/plugins/<id>/`` with the Docker ``Plugin``
object (name, settings, whether it is enabled) in ``plugin.json``, written last and atomically,
so a plugin is whole or absent after a crash (a directory without it is removed at start-up).

Running one (enable, disable, restore) is :mod:`.pluginrun`'s. Pulling, pushing and upgrading
plugins from a registry are not offered (the routes say so); ``GET /plugins/privileges`` reads
a plugin's config from its registry.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from typing import IO, Any, cast

from dockyard.hookspecs import registry as mt
from dockyard.hookspecs.host import tarsafe
from dockyard.hookspecs.errors import Conflict, DockyardError, InvalidParameter, NotFound

from . import reference
from .blobs import atomic_write
from .filters import Args, invalid
from .schema import decode
from .schema.plugins import PluginConfig, capability, go_shape

log = logging.getLogger(__name__)

#: what a plugin's archive may hold (the root file system of a container to be)
PLUGIN_ARCHIVE = tarsafe.Policy(label="plugin archive", whiteouts="plain")
#: the config blob of a plugin in a registry
PLUGIN_CONFIG_TYPE = "application/vnd.docker.plugin.v1+json"
FULL_ID = 64


def plugin_name(name: str) -> str:
    """``name`` as dockerd names plugins: familiar, with a tag (``vieux/sshfs:latest``)."""
    ref = reference.parse(name)
    if ref.digest:
        raise InvalidParameter("canonical references are not permitted")
    return f"{ref.familiar_name}:{ref.tag}"


class PluginService:
    def __init__(self, daemon: Any) -> None:
        self.d = daemon
        self.root = os.path.join(daemon.data_root, "plugins")
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self.plugins: dict[str, dict[str, Any]] = {}
        for pid in os.listdir(self.root):
            path = os.path.join(self.root, pid, "plugin.json")
            try:
                with open(path, encoding="utf-8") as f:
                    self.plugins[pid] = json.load(f)
            except (OSError, ValueError):  # a create that did not finish
                log.info("removing incomplete plugin directory %s", pid)
                shutil.rmtree(os.path.join(self.root, pid), ignore_errors=True)

    # -- lookup ---------------------------------------------------------------------------
    def get(self, ref: str) -> dict[str, Any]:
        """A plugin by full id, name (the tag defaults to latest) or unique id prefix, as
        dockerd's plugin store resolves them."""
        if len(ref) == FULL_ID and ref in self.plugins:
            return self.plugins[ref]
        try:
            name = plugin_name(ref)
        except InvalidParameter:
            raise NotFound(f'plugin "{ref}" not found') from None
        for p in self.plugins.values():
            if p["Name"] == name:
                return p
        found = [p for pid, p in self.plugins.items() if pid.startswith(ref)]
        if len(found) > 1:
            raise InvalidParameter(f'multiple plugins found for "{ref}"')
        if not found:
            raise NotFound(f'plugin "{ref}" not found')
        return found[0]

    def dir(self, p: dict[str, Any]) -> str:
        return os.path.join(self.root, p["Id"])

    def save(self, p: dict[str, Any]) -> None:
        atomic_write(os.path.join(self.dir(p), "plugin.json"), json.dumps(p).encode(), 0o600)

    def list(self, args: Args) -> list[dict[str, Any]]:
        """``GET /plugins``: filters ``enabled`` and ``capability``, as dockerd's."""
        args.validate(("enabled", "capability"))
        enabled: bool | None = None
        if args.contains("enabled"):
            if args.exact_match("enabled", "true"):
                enabled = True
            elif args.exact_match("enabled", "false"):
                enabled = False
            else:
                raise invalid("enabled", args.get("enabled"))
        out = []
        for p in sorted(self.plugins.values(), key=lambda p: p["Name"]):
            if enabled is not None and p["Enabled"] != enabled:
                continue
            types = p["Config"]["Interface"]["Types"] or []
            if args.contains("capability") and not all(
                    args.match("capability", capability(t)) for t in types):
                continue
            out.append(p)
        return out

    # -- create / remove / set --------------------------------------------------------------
    def create(self, name: str, archive: str, digest: str, version: str) -> dict[str, Any]:
        """``POST /plugins/create``: a disabled plugin from ``archive`` (a tar, maybe
        compressed, of ``config.json`` and ``rootfs/``; ``digest`` its sha256; ``version``
        the engine's, recorded as the config's DockerVersion)."""
        name = plugin_name(name)
        if any(p["Name"] == name for p in self.plugins.values()):
            raise Conflict(f"plugin {name} already exists")
        tmp = tempfile.mkdtemp(prefix="create-", dir=self.root)
        try:
            tarsafe.extract_file(archive, tmp, PLUGIN_ARCHIVE)
            config = _read_config(tmp)
            if not os.path.isdir(os.path.join(tmp, "rootfs")):
                raise InvalidParameter("no rootfs found")
            os.unlink(os.path.join(tmp, "config.json"))
            config["DockerVersion"] = version
            config["rootfs"] = {"type": "layers", "diff_ids": [digest]}
            pid = secrets.token_hex(32)
            p = {"Id": pid, "Name": name, "Enabled": False, "PluginReference": name,
                 "Config": config, "Settings": initial_settings(config)}
            os.rename(tmp, os.path.join(self.root, pid))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self.save(p)  # last: the plugin exists once this is written
        self.plugins[pid] = p
        self.d.event("plugin", "create", pid, {"name": name})
        return p

    def remove(self, ref: str, force: bool = False) -> None:
        """``DELETE /plugins/{name}``: an enabled plugin only with ``force`` (then it stops)."""
        p = self.get(ref)
        if p["Enabled"] and not force:
            raise Conflict(f"plugin {p['Name']} is enabled")
        self.plugins.pop(p["Id"], None)
        trash = self.dir(p) + "-removing"
        os.rename(self.dir(p), trash)  # gone at once, even if the delete below is cut short
        shutil.rmtree(trash, ignore_errors=True)
        self.d.event("plugin", "remove", p["Id"], {"name": p["Name"]})

    def set(self, ref: str, args: Sequence[str]) -> None:
        """``POST /plugins/{name}/set``: ``NAME=value`` of a settable env variable, mount
        source (``name.source=``), device path (``name.path=``) or the args."""
        p = self.get(ref)
        if p["Enabled"]:
            raise InvalidParameter("cannot set on an active plugin, disable plugin before setting")
        for arg in args:
            apply_setting(p, arg)
        self.save(p)


def _read_config(tmp: str) -> dict[str, Any]:
    path = os.path.join(tmp, "config.json")
    if not os.path.isfile(path) or os.path.islink(path):
        raise InvalidParameter("config not found")
    with open(path, "rb") as f:
        raw = f.read(1 << 20)
    try:
        return go_shape(decode(raw, PluginConfig))
    except InvalidParameter as exc:
        raise InvalidParameter(f"failed to parse config: {exc.message}") from None


def initial_settings(config: dict[str, Any]) -> dict[str, Any]:
    """dockerd's ``InitEmptySettings``: the config's mounts, devices, env values and args."""
    return {"Args": list(config["Args"]["Value"] or []),
            "Devices": [dict(d) for d in config["Linux"]["Devices"] or []],
            "Env": [f"{e['Name']}={e['Value']}" for e in config["Env"] or []
                    if e.get("Value") is not None],
            "Mounts": [dict(m) for m in config["Mounts"] or []]}


_SETTABLE = {"Env": "value", "Mounts": "source", "Devices": "path", "Args": "value"}


def apply_setting(p: dict[str, Any], arg: str) -> None:
    """One ``<name>[.<field>]=<value>`` of ``docker plugin set`` (moby's ``settable``)."""
    if arg.startswith("="):
        raise InvalidParameter("invalid format, must be <name>[.<field>][=<value>]")
    name, _, value = arg.partition("=")
    field = ""
    dot = name.rfind(".")
    if dot > 0:
        name, field = name[:dot], name[dot + 1:]
    cfg, settings = p["Config"], p["Settings"]
    targets = [("Env", e) for e in cfg["Env"] or []] + \
        [("Mounts", m) for m in cfg["Mounts"] or []] + \
        [("Devices", d) for d in cfg["Linux"]["Devices"] or []] + [("Args", cfg["Args"])]
    for kind, item in targets:
        if item.get("Name") != name or (kind == "Args" and not name):
            continue
        settable = item.get("Settable") or []
        if not field and len(settable) > 1:
            raise InvalidParameter("multiple fields are settable, one must be specified")
        want = field or (settable[0] if settable else "")
        if want != _SETTABLE[kind] or want not in settable:
            raise InvalidParameter(f'"{name + ("." + field if field else "")}" is not settable')
        if kind == "Env":  # replaced where it is, else added (moby's updateSettingsEnv)
            at = next((i for i, e in enumerate(settings["Env"]) if e.split("=", 1)[0] == name),
                      len(settings["Env"]))
            settings["Env"][at:at + 1] = [f"{name}={value}"]
        elif kind == "Args":
            settings["Args"] = value.split(" ")
        else:  # as dockerd: the config's mount source / device path, which settings share
            key = "Source" if kind == "Mounts" else "Path"
            if item.get(key) is None:
                raise InvalidParameter(f"Plugin config has no {'mount source' if key == 'Source' else 'device path'}")
            item[key] = value
            for s in settings[kind]:
                if s.get("Name") == name:
                    s[key] = value
        return
    raise InvalidParameter(f'setting "{name}" not found in the plugin configuration')


# -- privileges -------------------------------------------------------------------------------
def privileges(config: dict[str, Any]) -> list[dict[str, Any]]:
    """What a plugin asks of the host (moby's ``computePrivileges``), for the user to grant."""
    out = []

    def add(name: str, description: str, value: list[str]) -> None:
        out.append({"Name": name, "Description": description, "Value": value})

    net = (config.get("Network") or {}).get("Type") or ""
    if net not in ("", "null", "bridge"):
        add("network", "permissions to access a network", [net])
    if config.get("IpcHost"):
        add("host ipc namespace", "allow access to host ipc namespace", ["true"])
    if config.get("PidHost"):
        add("host pid namespace", "allow access to host pid namespace", ["true"])
    for m in config.get("Mounts") or ():
        if m.get("Source") is not None:
            add("mount", "host path to mount", [m["Source"]])
    linux = config.get("Linux") or {}
    for dev in linux.get("Devices") or ():
        if dev.get("Path") is not None:
            add("device", "host device to access", [dev["Path"]])
    if linux.get("AllowAllDevices"):
        add("allow-all-devices", "allow 'rwm' access to all devices", ["true"])
    if linux.get("Capabilities"):
        add("capabilities", "list of additional capabilities required", linux["Capabilities"])
    return out


class NotAPlugin(DockyardError):
    """What a registry holds under a name is not a plugin (dockerd's 500)."""


def remote_config(backend: Any, repo: str, ref: str) -> dict[str, Any] | None:
    """The config of plugin ``repo:ref`` in a registry (its manifest's config blob, whose
    media type says it is a plugin), as :func:`go_shape` gives it; None when it cannot be
    fetched (not there, registry unreachable): dockerd's ``Privileges`` then answers an empty
    list, not an error (moby plugin/backend_linux.go), and so does dockyard."""
    from .transfer import MAX_CONFIG, fetch_manifest, read_all

    try:
        _media, raw, _digest = fetch_manifest(backend, repo, ref)
    except DockyardError as exc:
        log.info("plugin privileges of %s:%s: %s", repo, ref, exc)
        return None
    desc = json.loads(raw).get("config") or {}
    if desc.get("mediaType") != PLUGIN_CONFIG_TYPE:
        raise NotAPlugin(f"did not find plugin config for specified reference {repo}:{ref}")
    with contextlib.closing(backend.get_blob(repo, mt.check_digest(desc["digest"]))) as s:
        data = read_all(cast(IO[bytes], mt.VerifyingReader(s, desc["digest"], desc.get("size"), "config")),
                        MAX_CONFIG)
    return go_shape(decode(data, PluginConfig))
