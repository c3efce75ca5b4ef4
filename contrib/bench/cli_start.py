"""How fast the ``dockyard`` CLI starts, against a bare Python start, in one hyperfine run.

    sudo .venv/bin/python contrib/bench/cli_start.py [--runs N] [--json OUT]

Starts a private dockyardd (temporary socket, data-root and exec-root; its default bridge is
a uniquely named one with forwarding and firewall rules off), then measures with hyperfine:
``python -c pass`` (the venv's interpreter), ``dockyard --help``, ``dockyard version`` and
``dockyard ps -a`` against that daemon, which holds a few containers (created from an image
imported from a one-file tarball; never started). Prints each median and its ratio to ``python -c pass``;
the goal is at most 2x. The machine is shared: compare the ratios of one run, not absolute
figures across runs.

Bytecode: an installed package runs from compiled bytecode (pip and Debian compile it at install
time), but a tree where ``PYTHONDONTWRITEBYTECODE`` is set (as in this project's sessions) has
none, and every run compiles what it imports. The commands are therefore measured with a private
``PYTHONPYCACHEPREFIX`` and bytecode writing on (hyperfine's warm-up runs fill it), the baseline
too; ``--no-cache`` measures them with the environment's own bytecode (none for a tree never
compiled, where ``PYTHONDONTWRITEBYTECODE`` is set: each run compiles what it imports).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

BIN = os.path.dirname(sys.executable)


def start_daemon(root: str) -> tuple[subprocess.Popen[bytes], str]:
    sock = os.path.join(root, "d.sock")
    config = os.path.join(root, "daemon.json")
    with open(config, "w") as f:
        f.write("{}")
    bridge = "dkc" + os.urandom(4).hex()
    log = open(os.path.join(root, "dockyardd.log"), "ab")
    proc = subprocess.Popen(
        [os.path.join(BIN, "dockyardd"), "--config-file", config, "-H", f"unix://{sock}",
         "--data-root", os.path.join(root, "data"), "--exec-root", os.path.join(root, "exec"),
         "--bridge", bridge, "--bip", f"10.{random.randint(128, 250)}.{random.randint(0, 255)}.1/24",
         "--ip-forward", "false",
         "--iptables", "false"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if subprocess.run([os.path.join(BIN, "dockyard"), "-H", f"unix://{sock}", "version"],
                          capture_output=True).returncode == 0:
            return proc, bridge
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"dockyardd did not come up; see {root}/dockyardd.log")


def populate(dockyard: list[str], containers: int) -> None:
    """An image imported from a one-file tarball and ``containers`` containers created from it,
    so that ``ps`` has rows to format."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        data = b"hello\n"
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    image = "dkc-bench:" + os.urandom(4).hex()
    subprocess.run([*dockyard, "import", "-", image], input=buf.getvalue(), check=True,
                   capture_output=True)
    for i in range(containers):
        subprocess.run([*dockyard, "create", "--name", f"dkc-bench-{i}", "--label", f"n={i}",
                        image, "/hello.txt"], check=True, capture_output=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--containers", type=int, default=5, help="containers ps lists (default 5)")
    ap.add_argument("--no-cache", action="store_true",
                    help="no private bytecode cache: the environment's own")
    ap.add_argument("--json", help="also write hyperfine's JSON export here")
    args = ap.parse_args()
    if not shutil.which("hyperfine"):
        raise SystemExit("hyperfine is not installed (apt-get install hyperfine)")
    root = tempfile.mkdtemp(prefix="dky-clib-", dir="/tmp")
    proc, bridge = start_daemon(root)
    host = f"unix://{os.path.join(root, 'd.sock')}"
    dockyard = os.path.join(BIN, "dockyard")
    commands = {"python -c pass": f"{sys.executable} -c pass",
                "dockyard --help": f"{dockyard} --help",
                "dockyard version": f"{dockyard} -H {host} version",
                "dockyard ps -a": f"{dockyard} -H {host} ps -a"}
    out = os.path.join(root, "hyperfine.json")
    env = dict(os.environ)
    if not args.no_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(root, "pycache")
    try:
        populate([dockyard, "-H", host], args.containers)
        subprocess.run(["hyperfine", "-N", "-w", "5", "-r", str(args.runs), "--export-json", out,
                        *[a for name, cmd in commands.items() for a in ("-n", name, cmd)]],
                       check=True, stdout=subprocess.DEVNULL, env=env)
        with open(out) as f:
            results = json.load(f)["results"]
    finally:
        proc.terminate()
        proc.wait(30)
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)  # if it was made
    base = results[0]["median"]
    print("bytecode:", "the environment's" if args.no_cache else "cached")
    low = results[0]["min"]
    for r in results:  # the minimum too: on a shared machine, the least disturbed run
        print(f"{r['command']:<18} median {r['median'] * 1000:7.1f} ms "
              f"{r['median'] / base:4.2f}x   min {r['min'] * 1000:7.1f} ms "
              f"{r['min'] / low:4.2f}x python -c pass")
    if args.json:
        shutil.copy(out, args.json)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
