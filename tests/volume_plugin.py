"""A small Docker volume plugin (the legacy out-of-process protocol), run by the tests.

    python volume_plugin.py PLUGIN_DIR NAME STATE_DIR

serves ``PLUGIN_DIR/NAME.sock``. A volume's data is ``STATE_DIR/data/<name>``; ``Mount`` bind-
mounts it on ``STATE_DIR/mnt/<name>`` (one real mount per volume, counted by the IDs that hold
it) and answers that path; ``Unmount`` of the last ID unmounts it. Every call is appended to
``STATE_DIR/calls.jsonl`` so a test sees what the daemon asked.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import plugin_server


class Plugin:
    def __init__(self, state: str) -> None:
        self.state = state
        self.volumes: dict[str, dict[str, str]] = {}  # name -> options
        self.mounts: dict[str, set[str]] = {}  # name -> mount IDs
        self.lock = threading.Lock()

    def log(self, method: str, body: dict) -> None:
        with open(os.path.join(self.state, "calls.jsonl"), "a") as f:
            f.write(json.dumps({"method": method, "body": body}) + "\n")

    def data(self, name: str) -> str:
        return os.path.join(self.state, "data", name)

    def mnt(self, name: str) -> str:
        return os.path.join(self.state, "mnt", name)

    def handle(self, method: str, body: dict) -> dict:
        name = body.get("Name", "")
        if method == "Plugin.Activate":
            return {"Implements": ["VolumeDriver"]}
        if method == "VolumeDriver.Capabilities":
            return {"Capabilities": {"Scope": "local"}}
        if method == "VolumeDriver.Create":
            if body.get("Opts", {}).get("fail"):
                return {"Err": f"refusing to create {name}: asked to fail"}
            self.volumes[name] = body.get("Opts") or {}
            os.makedirs(self.data(name), exist_ok=True)
            return {"Err": ""}
        if name not in self.volumes and method != "VolumeDriver.List":
            return {"Err": f"no such volume {name}"}
        if method == "VolumeDriver.Remove":
            if self.mounts.get(name):
                return {"Err": f"volume {name} is mounted"}
            del self.volumes[name]
            subprocess.run(["rm", "-rf", self.data(name)], check=True)
            return {"Err": ""}
        if method == "VolumeDriver.Mount":
            ids = self.mounts.setdefault(name, set())
            if not ids:
                os.makedirs(self.mnt(name), exist_ok=True)
                subprocess.run(["mount", "--bind", self.data(name), self.mnt(name)], check=True)
            ids.add(body["ID"])
            return {"Mountpoint": self.mnt(name), "Err": ""}
        if method == "VolumeDriver.Unmount":
            ids = self.mounts.get(name, set())
            if body.get("ID") not in ids:
                return {"Err": f"volume {name} is not mounted with ID {body.get('ID')}"}
            ids.discard(body["ID"])
            if not ids:
                subprocess.run(["umount", self.mnt(name)], check=True)
            return {"Err": ""}
        mountpoint = self.mnt(name) if self.mounts.get(name) else ""
        if method == "VolumeDriver.Path":
            return {"Mountpoint": mountpoint, "Err": ""}
        if method == "VolumeDriver.Get":
            return {"Volume": {"Name": name, "Mountpoint": mountpoint,
                               "Status": {"mounts": len(self.mounts.get(name, ()))}}, "Err": ""}
        if method == "VolumeDriver.List":
            return {"Volumes": [{"Name": n} for n in sorted(self.volumes)], "Err": ""}
        return None  # unknown method: 404


def serve(plugin_dir: str, name: str, state: str) -> None:
    plugin = Plugin(state)

    def answer(method: str, body: dict) -> dict | None:
        with plugin.lock:
            plugin.log(method, body)
            return plugin.handle(method, body)

    plugin_server.serve(plugin_dir, name, answer)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
