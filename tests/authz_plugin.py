"""A small Docker authorization plugin (``AuthZPlugin.AuthZReq``/``AuthZRes``), run by the tests.

    python authz_plugin.py PLUGIN_DIR NAME STATE_DIR

serves ``PLUGIN_DIR/NAME.sock``. A request whose JSON body has the label ``authz=deny`` is
refused (``Allow: false``), ``authz=err`` makes the plugin answer an ``Err``; a response whose
body names anything ``hidden-...`` is refused. Every call (with its bodies decoded) is appended
to ``STATE_DIR/calls.jsonl``.
"""
from __future__ import annotations

import base64
import json
import os
import sys

import plugin_server


def decoded(b64: str | None) -> object:
    return json.loads(base64.b64decode(b64)) if b64 else None


def handle(method: str, body: dict) -> dict | None:
    if method == "Plugin.Activate":
        return {"Implements": ["authz"]}
    if method == "AuthZPlugin.AuthZReq":
        request = decoded(body.get("RequestBody"))
        label = ((request or {}).get("Labels") or {}).get("authz") if isinstance(request, dict) else None
        if label == "deny":
            return {"Allow": False, "Msg": "labels say no"}
        if label == "err":
            return {"Allow": False, "Err": "plugin broke"}
        return {"Allow": True}
    if method == "AuthZPlugin.AuthZRes":
        if b"hidden-" in base64.b64decode(body.get("ResponseBody") or ""):
            return {"Allow": False, "Msg": "not for your eyes"}
        return {"Allow": True}
    return None


def serve(plugin_dir: str, name: str, state: str) -> None:
    def answer(method: str, body: dict) -> dict | None:
        with open(os.path.join(state, "calls.jsonl"), "a") as f:
            f.write(json.dumps({"method": method, "body": body,
                                "request": decoded(body.get("RequestBody")),
                                "response": decoded(body.get("ResponseBody"))}) + "\n")
        return handle(method, body)

    plugin_server.serve(plugin_dir, name, answer)


if __name__ == "__main__":
    serve(*sys.argv[1:4])
