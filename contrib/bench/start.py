#!/usr/bin/env python3
"""Start-path and memory benchmark: dockyardd against dockerd (and optionally podman), in one run.

Run as root from the repository (``.venv/bin/python contrib/bench/start.py [--with-podman]``). Needs
``docker`` (the CLI), ``dockerd`` + ``containerd`` (Debian ``docker.io``) and ``hyperfine``. Both
daemons get their data and exec roots on one fresh tmpfs, import the same busybox rootfs tar
(``python -m dockyard.core.busybox``), run with no network (``--bridge=none --iptables=false``) and
are driven through the same docker CLI.

``--with-podman`` adds podman as a third peer (skipped with a message if podman is not installed).
Install it from Debian, with no service started::

    [ -e /usr/sbin/policy-rc.d ] || printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d; apt-get install -y podman runc

podman has no daemon, so it is measured through **its own CLI** (``podman run``, ``podman exec``;
no ``podman system service``), each call a fresh podman process. It gets its own ``--root`` /
``--runroot`` (storage driver overlay), tmp dir, events log and network config dir on the same
tmpfs, a private ``containers.conf`` (``CONTAINERS_CONF``: runtime runc, cgroupfs, ulimits within
this host's hard limits, file events) and ``storage.conf``, imports the same tar with
``podman import``, and every run uses ``--pull never --network none``. Outside the tmpfs it still
touches runc's default state root (/run/runc, a tmpfs as well) and c/image's blob-info cache
(/var/lib/containers/cache).

``--with-runc`` adds runc (``/usr/sbin/runc``, Debian ``runc``) to the ``run --rm`` figure, the floor
of "a container start": no image store, no daemon, no client. Its OCI bundle is the same busybox
rootfs tar unpacked on the tmpfs, with the ``config.json`` of ``runc spec`` adjusted (``args``
``["true"]``, no terminal, root not read-only; ``runc spec`` already asks for new pid, network
(``lo`` only), ipc, uts and mount namespaces; it sets no seccomp filter and no cgroup limits). Each
run is ``runc --root <tmpfs>/state run --bundle B dybench-true``: ``runc run`` deletes the container
when its process exits, so one id serves every run, one at a time.

Measured, for each engine, and reported as ratios dockyard / docker (and dockyard / podman,
dockyard / runc):
* ``run --rm --network none busybox true`` (hyperfine), also through dockyard's own CLI
  (``dockyard run``, column ``dockyard-cli``, same dockyardd) and, with ``--with-runc``, runc
* ``exec C true`` on a running container (hyperfine)
* starting 100 idle containers (``run -d ... sleep``), sequential and with 10 parallel clients
* memory per idle container: PSS of every engine process (daemon, supervisor / containerd, shims;
  for podman: one conmon per container plus any podman process alive) and the drop in MemAvailable,
  over 100 idle containers; engines take turns for ``--mem-rounds`` rounds (median reported),
  ``--drop-caches`` drops the page cache before each MemAvailable reading
These are benchmarks, not tests: numbers vary with the machine; compare ratios of one run.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shlex
import shutil
import signal
import statistics
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
    run_opts: tuple[str, ...] = ()  # extra options of every ``run``

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

    cli = docker  # the engine's client; podman overrides it with its own CLI

    def cli_line(self, args: str) -> str:
        """``args`` as one command line for hyperfine (no shell), with the client's environment."""
        return (f"env DOCKER_HOST={self.host} DOCKER_CONFIG={self.env['DOCKER_CONFIG']} "
                f"DOCKER_CLI_HINTS=false docker {args}")

    def load_image(self, tar: str) -> None:
        with open(tar, "rb") as f:
            subprocess.run(["docker", "import", "-", "busybox:latest"], stdin=f, env=self.env,
                           check=True, capture_output=True)

    def remove_all(self) -> None:
        ids = self.cli("ps", "-aq").stdout.decode().split()
        for i in range(0, len(ids), 50):
            self.cli("rm", "-f", *ids[i:i + 50], check=False)

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


class Podman(Engine):
    """podman through its own CLI: no daemon, one conmon per container."""
    name = "podman"
    run_opts = ("--pull", "never")

    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.conf = os.path.join(root, "containers.conf")
        self.storage_conf = os.path.join(root, "storage.conf")
        self.registries_conf = os.path.join(root, "registries.conf")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("DOCKER_", "CONTAINERS_"))}
        self.env.update(CONTAINERS_CONF=self.conf, CONTAINERS_STORAGE_CONF=self.storage_conf,
                        CONTAINERS_REGISTRIES_CONF=self.registries_conf)
        self.argv = ["podman", "--root", os.path.join(root, "root"), "--runroot", os.path.join(root, "runroot"),
                     "--storage-driver", "overlay"]

    def start(self) -> None:
        r = self.root
        # This host: runc (crun refuses hybrid cgroups), cgroupfs (no systemd), and default ulimits no
        # higher than root's hard limits (CAP_SYS_RESOURCE is missing). See HOST-FACTS.md.
        with open(self.conf, "w") as f:
            f.write(f"""[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
log_driver = "k8s-file"

[network]
network_config_dir = "{r}/networks"

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{r}/events.log"
tmp_dir = "{r}/tmp"
volume_path = "{r}/volumes"
""")
        with open(self.storage_conf, "w") as f:
            f.write(f'[storage]\ndriver = "overlay"\ngraphroot = "{r}/root"\nrunroot = "{r}/runroot"\n')
        with open(self.registries_conf, "w") as f:
            f.write("unqualified-search-registries = []\n")  # nothing to resolve a short name against

    def stop(self) -> None:
        pass  # no daemon; the containers' conmons are ended by remove_all / kill_leftovers

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self.argv, *args], env=self.env, capture_output=True, check=check)

    cli = podman

    def cli_line(self, args: str) -> str:
        envs = " ".join(f"{k}={self.env[k]}" for k in
                        ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF"))
        if args.startswith("run "):
            args = "run " + " ".join(self.run_opts) + args[3:]
        return f"env {envs} {shlex.join(self.argv)} {args}"

    def load_image(self, tar: str) -> None:
        self.podman("import", tar, "busybox:latest")

    def remove_all(self) -> None:
        # -t 0: sleep as pid 1 ignores SIGTERM; docker's rm -f kills at once, podman's would wait 10 s
        self.podman("rm", "-a", "-f", "-t", "0", check=False)

    def owns(self, comm: str, cmd: list[str]) -> bool:
        joined = " ".join(cmd)
        return comm in ("conmon", "podman") and self.root in joined

    def kill_leftovers(self) -> None:
        """After a failure: end what remove_all could not (conmons and their containers), by pid."""
        pids = self.engine_pids()
        kids = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/task/{pid}/children") as f:
                    kids += [int(c) for c in f.read().split()]
            except OSError:
                pass
        for pid in kids + pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if self.podman("ps", "-aq", check=False).stdout.strip():
            self.podman("rm", "-a", "-f", "-t", "0", check=False)


class DockyardCli:
    """dockyard's own CLI (Python) against the same dockyardd: only in the ``run --rm`` figure."""
    name = "dockyard-cli"

    def __init__(self, daemon: Dockyard) -> None:
        self.daemon = daemon

    def cli_line(self, args: str) -> str:
        return f"env DOCKYARD_HOST={self.daemon.host} {os.path.join(VENV_BIN, 'dockyard')} {args}"


class Runc:
    """runc alone on an OCI bundle of the same rootfs: only in the ``run --rm`` figure."""
    name = "runc"
    container_id = "dybench-true"

    def __init__(self, root: str) -> None:
        self.root = root
        self.bundle = os.path.join(root, "bundle")
        self.state = os.path.join(root, "state")

    def prepare(self, tar: str) -> None:
        rootfs = os.path.join(self.bundle, "rootfs")
        os.makedirs(rootfs)
        sh("tar", "-xf", tar, "-C", rootfs)
        sh("runc", "spec", "--bundle", self.bundle)
        path = os.path.join(self.bundle, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["process"]["args"] = ["true"]
        config["process"]["terminal"] = False
        config["root"]["readonly"] = False
        namespaces = config["linux"].setdefault("namespaces", [])
        if not any(n["type"] == "network" for n in namespaces):
            namespaces.append({"type": "network"})  # a new one: lo only, as --network none
        with open(path, "w") as f:
            json.dump(config, f, indent=2)
        self.run_once()

    def argv(self) -> list[str]:
        return ["runc", "--root", self.state, "run", "--bundle", self.bundle, self.container_id]

    def run_once(self) -> None:
        r = subprocess.run(self.argv(), capture_output=True, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError(f"runc run failed: {r.stderr.decode(errors='replace').strip()}")

    def cli_line(self, args: str) -> str:
        assert args == "run --rm --network none busybox true", args
        return shlex.join(self.argv())

    def cleanup(self) -> None:
        if os.path.isdir(self.state):
            sh("runc", "--root", self.state, "delete", "-f", self.container_id, check=False)


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


def settled_available(drop_caches: bool) -> int:
    """MemAvailable (KiB), the median of five readings 0.2 s apart; with ``drop_caches``, after
    ``sync`` and dropping the page cache (what other jobs cache is then not in the figure)."""
    if drop_caches:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
    values = []
    for _ in range(5):
        values.append(mem_available_kib())
        time.sleep(0.2)
    return int(statistics.median(values))


def mem_available_kib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def hyperfine(engines: list[Engine], args: str, runs: int, out: str) -> dict[str, float]:
    """Median seconds of ``args`` per engine, each through its own client and environment."""
    cmd = ["hyperfine", "-N", "--warmup", "3", "--runs", str(runs), "--export-json", out]
    for e in engines:
        cmd += ["-n", e.name, e.cli_line(args)]
    subprocess.run(cmd, check=True)
    with open(out) as f:
        res = json.load(f)["results"]
    return {r["command"]: r["median"] for r in res}


def start_many(e: Engine, n: int, clients: int) -> tuple[float, list[str]]:
    def one(_: int) -> str:
        r = e.cli("run", "-d", *e.run_opts, "--network", "none", "busybox", "sleep", "100000")
        return r.stdout.decode().strip()

    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        ids = list(pool.map(one, range(n)))
    return (time.perf_counter() - t0) / n, ids


def ratios(results: dict, num: str, den: str) -> dict[str, float]:
    return {k: v[num] / v[den] for k, v in results.items()
            if isinstance(v, dict) and isinstance(v.get(num), (int, float))
            and isinstance(v.get(den), (int, float)) and v[den]}


#: the ratios the table shows, when both columns are there
PAIRS = (("dockyard", "docker"), ("dockyard", "podman"), ("docker", "podman"), ("dockyard", "runc"),
         ("docker", "runc"), ("dockyard-cli", "runc"), ("dockyard-cli", "docker"))


def table(results: dict, names: list[str]) -> str:
    """The results as a Markdown table: one row per figure, one column per engine, then ratios
    ("-" where a figure was not measured for a column: dockyard-cli and runc only start)."""
    pairs = [(a, b) for a, b in PAIRS if a in names and b in names]
    head = ["figure", *names, *[f"{a}/{b}" for a, b in pairs]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, v in results.items():
        if any(isinstance(x, list) for x in v.values()):  # per-round detail: JSON only
            continue
        ms = key.endswith("_s") or key.endswith("_s_each")
        cells = [key + (" (ms)" if ms else "")]
        cells += ["-" if v.get(n) is None else f"{v[n] * 1000:.1f}" if ms else f"{v[n]:.0f}"
                  for n in names]
        cells += [f"{v[a] / v[b]:.2f}" if v.get(a) is not None and v.get(b) else "-"
                  for a, b in pairs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--idle", type=int, default=100)
    ap.add_argument("--mem-rounds", type=int, default=3,
                    help="memory measurement rounds per engine (the median is reported)")
    ap.add_argument("--drop-caches", action="store_true",
                    help="sync and drop the page cache before each MemAvailable reading")
    ap.add_argument("--with-podman", action="store_true",
                    help="add podman (through its own CLI) as a third peer, if installed")
    ap.add_argument("--with-runc", action="store_true",
                    help="add runc alone on an OCI bundle of the same rootfs to the run --rm figure")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    for tool in ("docker", "dockerd", "hyperfine"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (apt-get install docker.io hyperfine)")
    with_podman = args.with_podman
    if with_podman:
        missing = [t for t in ("podman", "conmon", "runc") if shutil.which(t) is None]
        if missing:
            print(f"--with-podman: {', '.join(missing)} not installed, skipping podman "
                  "(apt-get install podman runc)", file=sys.stderr)
            with_podman = False
    with_runc = args.with_runc
    if with_runc and shutil.which("runc") is None:
        print("--with-runc: runc not installed, skipping it (apt-get install runc)", file=sys.stderr)
        with_runc = False

    def interrupted(signum: int, _frame) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    for sig in (signal.SIGTERM, signal.SIGHUP):  # clean up (finally below) on these as on Ctrl-C
        signal.signal(sig, interrupted)
    work = tempfile.mkdtemp(prefix="dybench-", dir="/tmp")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4g", "tmpfs", work], check=True)
    engines: list[Engine] = [Dockyard(os.path.join(work, "dy")), Docker(os.path.join(work, "dk"))]
    if with_podman:
        engines.append(Podman(os.path.join(work, "pm")))
    # peers measured only in the run --rm figure
    starters: list = [DockyardCli(engines[0])]
    runc = Runc(os.path.join(work, "runc")) if with_runc else None
    if runc is not None:
        starters.append(runc)
    names = [e.name for e in engines] + [p.name for p in starters]
    results: dict = {}
    load0 = os.getloadavg()
    try:
        tar = os.path.join(work, "busybox.tar")
        subprocess.run([os.path.join(VENV_BIN, "python"), "-m", "dockyard.core.busybox", tar], check=True)
        for e in engines:
            e.start()
            e.load_image(tar)
            e.cli("run", "--rm", *e.run_opts, "--network", "none", "busybox", "true")
        if runc is not None:
            runc.prepare(tar)
        results["run_rm_true_s"] = hyperfine([*engines, *starters],
                                             "run --rm --network none busybox true",
                                             args.runs, os.path.join(work, "run.json"))
        cids = {e.name: e.cli("run", "-d", *e.run_opts, "--network", "none", "busybox", "sleep", "100000")
                .stdout.decode().strip() for e in engines}
        ex = {}
        for e in engines:  # one container id per engine: one hyperfine call each
            ex.update(hyperfine([e], f"exec {cids[e.name]} true", args.runs,
                                os.path.join(work, f"exec-{e.name}.json")))
        results["exec_true_s"] = ex
        for e in engines:
            e.remove_all()
        for clients in (1, 10):
            for e in engines:
                per, _ = start_many(e, args.idle, clients)
                results.setdefault(f"start_{args.idle}_clients{clients}_s_each", {})[e.name] = per
                e.remove_all()
        # memory: engines take turns, ``--mem-rounds`` times; each figure is the median of its
        # rounds (MemAvailable moves with everything else on a shared machine)
        rounds: dict[str, dict[str, list[float]]] = {}
        for _ in range(args.mem_rounds):
            for e in engines:
                time.sleep(1)
                pss0, avail0 = pss_kib(e.engine_pids()), settled_available(args.drop_caches)
                _, ids = start_many(e, args.idle, 10)
                time.sleep(2)
                pids = e.engine_pids()
                pss1, avail1 = pss_kib(pids), settled_available(args.drop_caches)
                running = len(e.cli("ps", "-q").stdout.split())
                if running != args.idle:
                    print(f"warning: {e.name}: {running} containers running, not {args.idle}",
                          file=sys.stderr)
                for key, value in (("pss_per_container_kib", (pss1 - pss0) / args.idle),
                                   ("memavailable_drop_per_container_kib", (avail0 - avail1) / args.idle),
                                   ("engine_pss_total_kib", pss1), ("engine_processes", len(pids))):
                    rounds.setdefault(key, {}).setdefault(e.name, []).append(value)
                e.remove_all()
        for key, per_engine in rounds.items():
            for name, values in per_engine.items():
                results.setdefault(key, {})[name] = statistics.median(values)
        results["memavailable_rounds_kib"] = {n: [round(v) for v in vs] for n, vs in
                                              rounds.get("memavailable_drop_per_container_kib", {}).items()}
    finally:
        for e in engines:
            try:
                e.remove_all()
            except Exception:  # noqa: BLE001
                pass
            e.stop()
            if isinstance(e, Podman):
                e.kill_leftovers()
        if runc is not None:
            runc.cleanup()
        time.sleep(1)
        subprocess.run(["sh", "-c", f"grep ' {work}' /proc/mounts | cut -d' ' -f2 | sort -r | "
                                    "xargs -r -n1 umount -l"], check=False)
        subprocess.run(["umount", "-l", work], check=False, stderr=subprocess.DEVNULL)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    # Other work on the machine moves MemAvailable (it is system-wide) far more than it moves PSS.
    report = {"engines": names, "loadavg_start_end": [load0, os.getloadavg()], "results": results,
              "ratios_dockyard_over_docker": ratios(results, "dockyard", "docker")}
    if with_runc:
        report["ratios_dockyard_over_runc"] = ratios(results, "dockyard", "runc")
        report["ratios_dockyard_cli_over_runc"] = ratios(results, "dockyard-cli", "runc")
        report["ratios_docker_over_runc"] = ratios(results, "docker", "runc")
    report["ratios_dockyard_cli_over_docker"] = ratios(results, "dockyard-cli", "docker")
    if with_podman:
        report["ratios_dockyard_over_podman"] = ratios(results, "dockyard", "podman")
        report["ratios_docker_over_podman"] = ratios(results, "docker", "podman")
        report["note"] = ("podman is driven by its own CLI (podman run / podman exec, no service); "
                          "dockyard and docker by the docker CLI")
    print(json.dumps(report, indent=2))
    print(table(results, names))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
