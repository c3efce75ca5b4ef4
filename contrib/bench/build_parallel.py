#!/usr/bin/env python3
"""Multi-stage build benchmark: dockyardd against dockerd 20.10's legacy builder, in one run.

Run as root from the repository (``.venv/bin/python contrib/bench/build_parallel.py``). Needs the
docker CLI and ``dockerd`` + ``containerd`` (Debian ``docker.io``). Both daemons keep their data
and exec roots on one fresh tmpfs, import the same busybox rootfs tar
(``python -m dockyard.core.busybox``) and are driven by the same docker CLI with
``DOCKER_BUILDKIT=0`` (the classic ``POST /build``), every RUN step with ``--network none``.

The Dockerfile has three independent stages that each sleep (``--sleep`` seconds, standing for
waiting on I/O) and compute (``--compute`` iterations of a shell loop, on one CPU), and a last
stage that copies a file from each. dockerd's legacy builder builds the stages one after the
other; dockyard builds independent stages at the same time, at most ``max-build-parallelism``
of them (default: the CPU count plus two, as ninja's jobs; 3 on two CPUs). Measured, as medians
of ``--rounds`` rounds, engines taking turns:

* cold: ``docker build --no-cache``
* warm: the same build again (every step from the cache)
* with ``--parallelism N``: a second dockyardd with ``max-build-parallelism`` N (default: the
  CPU count itself, to show what the bound costs)

Reported as seconds and as ratios dockyard / dockerd. A benchmark, not a test: compare the
ratios of one run. (Meant to be folded into ``dockyard bench`` as a scenario; it borrows its
fresh file system from there already.)
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from typing import Iterator

from dockyard.cli.bench.host import FreshFs
from dockyard.hookspecs.conformance.subnets import free_subnet

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV_BIN = os.path.join(REPO, ".venv", "bin")

DOCKERFILE = """\
FROM busybox AS one
RUN sleep {sleep} && i=0 && while [ $i -lt {compute} ]; do i=$((i+1)); done && echo one > /out
FROM busybox AS two
RUN sleep {sleep} && i=0 && while [ $i -lt {compute} ]; do i=$((i+1)); done && echo two > /out
FROM busybox AS three
RUN sleep {sleep} && i=0 && while [ $i -lt {compute} ]; do i=$((i+1)); done && echo three > /out
FROM busybox
COPY --from=one /out /one
COPY --from=two /out /two
COPY --from=three /out /three
CMD ["cat", "/one", "/two", "/three"]
"""


def cli_env(host: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(DOCKER_HOST=host, DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false",
               DOCKER_CONFIG=os.path.join(os.path.dirname(host[len("unix://"):]), "cli"))
    return env


def docker(host: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(["docker", *args], env=cli_env(host), capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {r.stderr[-2000:]}")
    return r


def wait_ready(host: str, proc: subprocess.Popen[bytes], what: str) -> None:
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        if docker(host, "version", check=False).returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up")


@contextlib.contextmanager
def daemon(root: str, tar: str, argv: list[str], host: str, what: str) -> Iterator[str]:
    """Start a daemon, import the busybox tar into it; stop it at the end."""
    log = open(os.path.join(root, f"{what}.log"), "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        wait_ready(host, proc, what)
        docker(host, "import", "--change", 'CMD ["sh"]', tar, "busybox:latest")
        yield host
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(60)
        log.close()


@contextlib.contextmanager
def dockyardd(root: str, tar: str, parallelism: int = 0) -> Iterator[str]:
    os.makedirs(root)
    bridge = "dyb" + os.urandom(4).hex()
    net = free_subnet()
    cfg = os.path.join(root, "daemon.json")
    with open(cfg, "w") as f:
        json.dump({"max-build-parallelism": parallelism} if parallelism else {}, f)
    host = f"unix://{root}/d.sock"
    try:
        with daemon(root, tar, [os.path.join(VENV_BIN, "dockyardd"), "--config-file", cfg,
                                "--data-root", f"{root}/data", "--exec-root", f"{root}/exec", "-H",
                                host, "--log-level", "warn", "--bridge", bridge,
                                "--bip", f"{net.network_address + 1}/24", "--ip-forward", "false"],
                    host, "dockyardd"):
            yield host
    finally:
        subprocess.run(["ip", "link", "del", bridge], capture_output=True)


@contextlib.contextmanager
def dockerd(root: str, tar: str) -> Iterator[str]:
    os.makedirs(root)
    host = f"unix://{root}/docker.sock"
    try:
        with daemon(root, tar, ["dockerd", "--data-root", f"{root}/data", "--exec-root", f"{root}/exec",
                                "--pidfile", f"{root}/pid", "-H", host, "--iptables=false",
                                "--ip-masq=false", "--bridge=none", "--storage-driver", "overlay2"],
                    host, "dockerd"):
            yield host
    finally:
        subprocess.run(["umount", "-R", f"{root}/exec"], capture_output=True)


def timed_build(host: str, ctx: str, *flags: str) -> float:
    t0 = time.perf_counter()
    docker(host, "build", "-q", "--network", "none", *flags, "-t", "bench:1", ctx)
    took = time.perf_counter() - t0
    out = docker(host, "run", "--rm", "--network", "none", "bench:1").stdout
    if out != "one\ntwo\nthree\n":
        raise RuntimeError(f"wrong image: {out!r}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sleep", type=float, default=2.0, help="seconds each stage sleeps")
    ap.add_argument("--compute", type=int, default=100000, help="iterations of each stage's loop")
    ap.add_argument("--parallelism", type=int, default=os.cpu_count() or 1,
                    help="also measure a dockyardd with this max-build-parallelism (0: skip; "
                         "default: the CPU count)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = ap.parse_args()
    if os.geteuid() != 0 or not shutil.which("dockerd") or not shutil.which("docker"):
        print("needs root, dockerd and the docker CLI", file=sys.stderr)
        return 2
    with FreshFs(size=2 << 30, prefix="dybuild-") as fs:
        root = fs.path
        tar = os.path.join(root, "busybox.tar")
        subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "dockyard.core.busybox", tar], check=True)
        ctx = os.path.join(root, "ctx")
        os.makedirs(ctx)
        with open(os.path.join(ctx, "Dockerfile"), "w") as f:
            f.write(DOCKERFILE.format(sleep=args.sleep, compute=args.compute))
        with contextlib.ExitStack() as stack:
            engines = {"dockerd": stack.enter_context(dockerd(f"{root}/dockerd", tar)),
                       "dockyard": stack.enter_context(dockyardd(f"{root}/dockyard", tar))}
            if args.parallelism:
                engines[f"dockyard-p{args.parallelism}"] = stack.enter_context(
                    dockyardd(f"{root}/dockyard-p", tar, args.parallelism))
            cold: dict[str, list[float]] = {e: [] for e in engines}
            warm: dict[str, list[float]] = {e: [] for e in engines}
            for e, host in engines.items():
                timed_build(host, ctx)  # a first build: images and caches in place
            for _ in range(args.rounds):
                for e, host in engines.items():
                    cold[e].append(timed_build(host, ctx, "--no-cache"))
                    warm[e].append(timed_build(host, ctx))
    med = {k: {"cold": statistics.median(cold[k]), "warm": statistics.median(warm[k])} for k in cold}
    ideal_seq = 3 * args.sleep
    print(f"three stages of sleep {args.sleep}s + {args.compute} loop iterations, "
          f"{os.cpu_count()} CPUs, {args.rounds} rounds (medians, seconds)")
    print(f"{'engine':<14}{'cold':>8}{'warm':>8}{'cold/dockerd':>14}{'warm/dockerd':>14}")
    for k, v in med.items():
        print(f"{k:<14}{v['cold']:>8.2f}{v['warm']:>8.2f}"
              f"{v['cold'] / med['dockerd']['cold']:>14.2f}{v['warm'] / med['dockerd']['warm']:>14.2f}")
    print(f"(sleeping alone: {ideal_seq:.1f}s one stage after the other)")
    if args.json:
        print(json.dumps({"median_seconds": med, "rounds": {"cold": cold, "warm": warm},
                          "sleep": args.sleep, "compute": args.compute, "cpus": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
