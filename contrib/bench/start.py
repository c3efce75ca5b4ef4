#!/usr/bin/env python3
"""Start-path and memory benchmark: dockyardd against dockerd, through the same docker CLI, in one run.

Run as root from the repository (``.venv/bin/python contrib/bench/start.py``). Needs ``docker`` (the
CLI), ``dockerd`` + ``containerd`` (Debian ``docker.io``) and ``hyperfine``. Both engines get their
data and exec roots on one fresh tmpfs, import the same busybox rootfs tar
(``python -m dockyard.core.busybox``) and run with no network (``--bridge=none --iptables=false``).

Measured, for each engine, and reported as the ratio dockyard / docker:
* ``docker run --rm --network none busybox true`` (hyperfine)
* ``docker exec C true`` on a running container (hyperfine)
* starting 100 idle containers (``run -d ... sleep``), sequential and with 10 parallel clients
* memory per idle container: PSS of every engine process (daemon, supervisor / containerd, shims)
  and the drop in MemAvailable, over 100 idle containers
These are benchmarks, not tests: numbers vary with the machine; compare ratios of one run.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
VENV_BIN = os.path.join(REPO, ".venv", "bin")


def sh(*args: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, capture_output=True, **kw)


class Engine:
    name = ""
    proc_names: tuple[str, ...] = ()

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, exist_ok=True)
        self.sock = os.path.join(root, "engine.sock")
        self.host = "unix://" + self.sock
        self.proc: subprocess.Popen | None = None
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        self.env.update(DOCKER_HOST=self.host, DOCKER_CONFIG=os.path.join(root, "cli-config"),
                        DOCKER_CLI_HINTS="false")

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", *args], env=self.env, capture_output=True, check=check)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: see {self.root}/engine.log")
            if self.docker("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} did not start")

    def engine_pids(self) -> list[int]:
        """Every process of the engine (not the containers' own processes)."""
        out = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmd = f.read().split(b"\0")
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            if self.owns(comm, [c.decode(errors="replace") for c in cmd]):
                out.append(int(pid))
        return out

    def owns(self, comm: str, cmd: list[str]) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Dockyard(Engine):
    name = "dockyard"

    def start(self) -> None:
        with open(os.path.join(self.root, "daemon.json"), "w") as f:
            f.write("{}")
        log = open(os.path.join(self.root, "engine.log"), "ab")
        self.proc = subprocess.Popen(
            [os.path.join(VENV_BIN, "dockyardd"), "--config-file", os.path.join(self.root, "daemon.json"),
             "--data-root", os.path.join(self.root, "data"), "--exec-root", os.path.join(self.root, "exec"),
             "-H", self.host, "--log-level", "warn"], stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        self.wait_ready()

    def owns(self, comm: str, cmd: list[str]) -> bool:
        joined = " ".join(cmd)
        return self.root in joined and ("dockyardd" in joined or "supervisor" in joined)


class Docker(Engine):
    name = "docker"

    def start(self) -> None:
        log = open(os.path.join(self.root, "engine.log"), "ab")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", os.path.join(self.root, "data"),
             "--exec-root", os.path.join(self.root, "exec"), "--pidfile", os.path.join(self.root, "pid"),
             "-H", self.host, "--iptables=false", "--ip-masq=false", "--bridge=none",
             "--storage-driver", "overlay2"],
            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
        self.wait_ready()

    def owns(self, comm: str, cmd: list[str]) -> bool:
        joined = " ".join(cmd)
        if comm == "dockerd" and self.root in joined:
            return True
        if comm == "containerd" and self.root in joined:
            return True
        return comm.startswith("containerd-shim") and self.root in joined


def pss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def hyperfine(cmds: dict[str, str], env_for: dict[str, dict], runs: int, out: str) -> dict[str, float]:
    """Median seconds per command; each engine's command runs with its own DOCKER_HOST."""
    args = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", out]
    for name, cmd in cmds.items():
        host = env_for[name]["DOCKER_HOST"]
        cfg = env_for[name]["DOCKER_CONFIG"]
        args += ["-n", name, f"env DOCKER_HOST={host} DOCKER_CONFIG={cfg} DOCKER_CLI_HINTS=false {cmd}"]
    subprocess.run(args, check=True)
    with open(out) as f:
        res = json.load(f)["results"]
    return {r["command"]: r["median"] for r in res}


def start_many(e: Engine, n: int, clients: int) -> tuple[float, list[str]]:
    def one(_: int) -> str:
        r = e.docker("run", "-d", "--network", "none", "busybox", "sleep", "100000")
        return r.stdout.decode().strip()

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        ids = list(pool.map(one, range(n)))
    return (time.perf_counter() - t0) / n, ids


def remove_all(e: Engine) -> None:
    ids = e.docker("ps", "-aq").stdout.decode().split()
    for i in range(0, len(ids), 50):
        e.docker("rm", "-f", *ids[i:i + 50], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--idle", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    for tool in ("docker", "dockerd", "hyperfine"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install docker.io hyperfine)")
    work = tempfile.mkdtemp(prefix="dybench-", dir="/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", work], check=True)
    engines = [Dockyard(os.path.join(work, "dy")), Docker(os.path.join(work, "dk"))]
    results: dict = {}
    try:
        tar = os.path.join(work, "busybox.tar")
        subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "dockyard.core.busybox", tar], check=True)
        for e in engines:
            e.start()
            with open(tar, "rb") as f:
                subprocess.run(["docker", "import", "-", "busybox:latest"], stdin=f, env=e.env,
                               check=True, capture_output=True)
            e.docker("run", "--rm", "--network", "none", "busybox", "true")
        envs = {e.name: e.env for e in engines}
        run = hyperfine({e.name: "docker run --rm --network none busybox true" for e in engines},
                        envs, args.runs, os.path.join(work, "run.json"))
        results["run_rm_true_s"] = run
        cids = {e.name: e.docker("run", "-d", "--network", "none", "busybox", "sleep", "100000")
                .stdout.decode().strip() for e in engines}
        ex = hyperfine({e.name: f"docker exec {cids[e.name]} true" for e in engines},
                       envs, args.runs, os.path.join(work, "exec.json"))
        results["exec_true_s"] = ex
        for e in engines:
            remove_all(e)
        for clients in (1, 10):
            for e in engines:
                per, _ = start_many(e, args.idle, clients)
                results.setdefault(f"start_{args.idle}_clients{clients}_s_each", {})[e.name] = per
                remove_all(e)
        for e in engines:
            time.sleep(1)
            pss0, avail0 = pss_kib(e.engine_pids()), mem_available_kib()
            start_many(e, args.idle, 10)
            time.sleep(2)
            pss1, avail1 = pss_kib(e.engine_pids()), mem_available_kib()
            results.setdefault("pss_per_container_kib", {})[e.name] = (pss1 - pss0) / args.idle
            results.setdefault("memavailable_drop_per_container_kib", {})[e.name] = \
                (avail0 - avail1) / args.idle
            results.setdefault("engine_pss_total_kib", {})[e.name] = pss1
            remove_all(e)
    finally:
        for e in engines:
            try:
                remove_all(e)
            except Exception:  # noqa: BLE001
                pass
            e.stop()
        time.sleep(1)
        subprocess.run(["sh", "-c", f"grep ' {work}' /proc/mounts | cut -d' ' -f2 | sort -r | "
                                    "xargs -r -n1 umount -l"], check=False)
        subprocess.run(["umount", "-l", work], check=False)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ratios = {k: v["dockyard"] / v["docker"] for k, v in results.items()
              if isinstance(v, dict) and v.get("docker")}
    report = {"results": results, "ratios_dockyard_over_docker": ratios}
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
