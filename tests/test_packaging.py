"""What ``pip install .`` gives: every package and data file of the tree in the distribution, and
a daemon that says which Debian binding it misses (and what still works) when run from a venv
that cannot see them."""
from __future__ import annotations

import fnmatch
import glob
import os
import subprocess
import sys
import sysconfig
import tomllib
from typing import Any

import pytest

from conftest import Daemon, running_daemon

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_pyproject_ships_every_package_and_data_file() -> None:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        project = tomllib.load(f)
    setup = project["tool"]["setuptools"]
    listed = set(setup["packages"])
    dirs = {pkg: os.path.join(ROOT, d) for pkg, d in setup["package-dir"].items()}
    data = setup.get("package-data", {})
    for top, top_dir in dirs.items():
        for dirpath, dirnames, files in os.walk(top_dir):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            rel = os.path.relpath(dirpath, top_dir)
            pkg = top if rel == "." else top + "." + rel.replace(os.sep, ".")
            payload = [f for f in files if not f.endswith((".py", ".pyc"))]
            if any(f.endswith(".py") for f in files) or payload:
                assert pkg in listed, f"{pkg} ({dirpath}) is not in pyproject's packages"
            for name in payload:
                patterns = data.get(pkg, [])
                assert any(fnmatch.fnmatch(name, p) for p in patterns), \
                    f"{os.path.join(dirpath, name)} is not in pyproject's package-data"


def _plain_venv(tmp: str) -> str:
    """A venv of Debian's Python that sees this checkout and its PyPI dependencies, but not the
    Debian modules ``make venv`` links in: what ``pip install .`` into a fresh venv gives."""
    here = sysconfig.get_paths()["purelib"]
    editable = glob.glob(os.path.join(here, "__editable__*dockyard*.pth"))
    if not editable:
        pytest.skip("dockyard is not installed in editable mode in this venv")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", tmp], check=True, timeout=120)
    python = os.path.join(tmp, "bin", "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(site, "00-dependencies.pth"), "w") as f:
        f.write(here + "\n")  # a plain path entry: its .pth files (the Debian links) are not read
    for pth in editable:
        with open(pth) as src, open(os.path.join(site, os.path.basename(pth)), "w") as dst:
            dst.write(src.read())
    check = subprocess.run([python, "-c", "import dockyard.core.daemon.main, aiohttp; import seccomp"],
                           capture_output=True, text=True)
    assert "No module named 'seccomp'" in check.stderr, check.stderr
    return python


def test_daemon_names_missing_debian_bindings(busybox_tar: str, tmp_path: Any) -> None:
    python = _plain_venv(str(tmp_path / "venv"))

    class PlainVenvDaemon(Daemon):
        def argv(self) -> list[str]:
            return [python, "-m", "dockyard.core.daemon.main", *super().argv()[1:]]

    with running_daemon(busybox_tar, daemon_class=PlainVenvDaemon) as d:
        log = d.logs()
        assert "python3-seccomp is missing" in log and "--security-opt seccomp=unconfined" in log
        assert "python3-btrfsutil is missing: the btrfs storage driver cannot be used" in log
        status, info = d.api.get("/info")
        assert status == 200
        assert any("python3-seccomp" in w for w in info["Warnings"])
        assert not any(o.startswith("name=seccomp") for o in info["SecurityOptions"])

        # Docker's default profile cannot be applied: said plainly, at start
        status, c = d.api.post("/containers/create", {"Image": "busybox", "Cmd": ["true"]})
        assert status == 201, c
        status, err = d.api.post(f"/containers/{c['Id']}/start")
        assert status >= 400 and "python3-seccomp" in err["message"], err
        # ... and everything else works
        status, c = d.api.post("/containers/create", {
            "Image": "busybox", "Cmd": ["sh", "-c", "echo unconfined"],
            "HostConfig": {"SecurityOpt": ["seccomp=unconfined"]}})
        assert status == 201, c
        assert d.api.post(f"/containers/{c['Id']}/start")[0] == 204
        status, waited = d.api.post(f"/containers/{c['Id']}/wait", timeout=120)
        assert status == 200 and waited["StatusCode"] == 0
        status, logs = d.api.get(f"/containers/{c['Id']}/logs?stdout=1")
        assert b"unconfined" in logs


def test_this_venv_has_the_bindings() -> None:
    """``make venv`` links Debian's modules in; the suite's own daemons have seccomp."""
    if sys.executable.startswith("/usr/bin/"):
        pytest.skip("not in a venv")
    import importlib.util
    assert importlib.util.find_spec("seccomp") is not None
