"""What the tests' small Docker plugins (``volume_plugin.py``, ``network_plugin.py``,
``authz_plugin.py``) and their test modules share.

The server side: :func:`serve` listens on ``PLUGIN_DIR/NAME.sock``, prints ``ready`` and answers
every ``POST /<Method>`` with what ``answer(method, body)`` gives (JSON, 200), or 404 with an
``Err`` when it gives None. The test side: :class:`Served` (a plugin's private directories and
the calls it logged), :func:`running_plugin` (its server as a process, removed afterwards) and
:func:`plugin_daemon` (a dockyardd that finds Docker plugins in that directory only).
"""
from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator, TypeVar

Answer = Callable[[str, dict], "dict | None"]


def serve(plugin_dir: str, name: str, answer: Answer) -> None:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw.strip() else {}
            got = answer(self.path.lstrip("/"), body)
            data = json.dumps(got if got is not None else {"Err": "unknown method"}).encode()
            self.send_response(200 if got is not None else 404)
            self.send_header("Content-Type", "application/vnd.docker.plugins.v1.2+json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def address_string(self) -> str:
            return "daemon"

        def log_message(self, *args: object) -> None:
            pass

    class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    with Server(os.path.join(plugin_dir, name + ".sock"), Handler) as server:
        print("ready", flush=True)
        server.serve_forever()


class Served:
    """A plugin's private plugin directory (``dir``, where its socket is) and state directory
    (``state``, where it logs every call to ``calls.jsonl``) under ``root``; a unique ``name``."""

    #: the start of its name; the method names its calls are filtered by may leave this out
    prefix = "dkyplug"
    namespace = ""

    def __init__(self, root: str) -> None:
        self.name = self.prefix + os.urandom(3).hex()
        self.dir = os.path.join(root, "plugins")
        self.state = os.path.join(root, "state")
        os.makedirs(self.dir)
        os.makedirs(self.state)

    def calls(self, method: str | None = None) -> list[dict[str, Any]]:
        """The calls the plugin logged, of ``method`` (with or without ``namespace``) if given."""
        try:
            with open(os.path.join(self.state, "calls.jsonl")) as f:
                calls = [json.loads(line) for line in f]
        except FileNotFoundError:
            return []
        return [c for c in calls
                if method is None or c["method"] in (method, self.namespace + method)]


P = TypeVar("P", bound=Served)


@contextmanager
def running_plugin(server: str, make: Callable[[str], P],
                   cleanup: Callable[[P], None] | None = None) -> Iterator[P]:
    """``server`` (a plugin script) serving ``make(root)`` in a fresh directory under /tmp;
    afterwards the process is killed, ``cleanup`` undoes what the plugin left, the directory goes."""
    root = tempfile.mkdtemp(prefix="dkyplug-", dir="/tmp")
    p = make(root)
    proc = subprocess.Popen([sys.executable, server, p.dir, p.name, p.state],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        yield p
    finally:
        proc.kill()
        proc.wait()
        if cleanup is not None:
            cleanup(p)
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def plugin_daemon(plugin: Served, busybox_tar: str | None, **kw: Any) -> Iterator[Any]:
    """A running dockyardd (conftest's ``Daemon``) that finds Docker plugins in ``plugin``'s
    private directory only."""
    from conftest import Daemon, running_daemon

    class PluginDaemon(Daemon):
        def __init__(self, *a: Any, **kwa: Any) -> None:
            super().__init__(*a, **kwa)
            self.config["docker-plugin-dirs"] = [plugin.dir]

    with running_daemon(busybox_tar, daemon_class=PluginDaemon, **kw) as d:
        yield d
