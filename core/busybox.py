"""The embedded default image: a busybox root file system made from Debian's ``busybox-static``.

``python -m dockyard.core.busybox OUT.tar`` writes a rootfs tar that ``dockyard import`` turns into
``busybox:latest``. No network is involved: the static binary comes from the host's package.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile

from dockyard.hookspecs.host import tarsafe

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")

PASSWD = (
    "root:x:0:0:root:/root:/bin/sh\n"
    "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
    "bin:x:2:2:bin:/bin:/bin/false\n"
    "sys:x:3:3:sys:/dev:/bin/false\n"
    "www-data:x:33:33:www-data:/var/www:/bin/false\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n"
)
GROUP = (
    "root:x:0:\n" "daemon:x:1:\n" "bin:x:2:\n" "sys:x:3:\n" "adm:x:4:\n" "tty:x:5:\n"
    "wheel:x:10:root\n" "staff:x:50:\n" "www-data:x:33:\n" "nogroup:x:65534:\n"
)


def find_busybox() -> str:
    """Path of a *static* busybox on this host (Debian's ``busybox-static``)."""
    for path in BUSYBOX_CANDIDATES:
        if os.path.isfile(path):
            out = subprocess.run(["file", "-L", path], capture_output=True, text=True).stdout \
                if os.path.exists("/usr/bin/file") else "statically linked"
            if "dynamically linked" not in out:
                return path
    raise FileNotFoundError("no static busybox found: apt-get install busybox-static")


def applets(busybox: str) -> list[str]:
    out = subprocess.run([busybox, "--list-full"], check=True, capture_output=True, text=True)
    return [line.strip() for line in out.stdout.splitlines() if line.strip()]


def write_rootfs_tar(fileobj, busybox: str | None = None) -> None:
    """Write the busybox rootfs as an uncompressed tar to ``fileobj``."""
    busybox = busybox or find_busybox()
    mtime = int(os.stat(busybox).st_mtime)

    def entry(name: str, kind: bytes = tarfile.DIRTYPE, mode: int = 0o755, **kw) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime, ti.uid, ti.gid = kind, mode, mtime, 0, 0
        for k, v in kw.items():
            setattr(ti, k, v)
        return ti

    with tarfile.open(fileobj=fileobj, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "dev", "etc", "home", "proc", "root", "sys", "tmp", "usr", "usr/bin",
                  "usr/sbin", "sbin", "var", "var/www", "var/spool", "var/spool/mail"):
            tar.addfile(entry(d, mode=0o1777 if d == "tmp" else (0o700 if d == "root" else 0o755)))
        with open(busybox, "rb") as f:
            tar.addfile(entry("bin/busybox", tarfile.REGTYPE, 0o755,
                              size=os.fstat(f.fileno()).st_size), f)
        for full in applets(busybox):
            rel = full.lstrip("/")
            if rel == "bin/busybox":
                continue
            # from the link's own directory in the image (never from the current directory)
            target = os.path.relpath("/bin/busybox", "/" + os.path.dirname(rel))
            tar.addfile(entry(rel, tarfile.SYMTYPE, 0o777, linkname=target))
        for name, text in (("etc/passwd", PASSWD), ("etc/group", GROUP),
                           ("etc/hostname", "busybox\n"), ("etc/hosts", "127.0.0.1\tlocalhost\n"),
                           ("etc/resolv.conf", ""), ("etc/shadow", "root:*::0:::::\n")):
            data = text.encode()
            mode = 0o640 if name == "etc/shadow" else 0o644
            tar.addfile(entry(name, tarfile.REGTYPE, mode, size=len(data)), io.BytesIO(data))


def build_rootfs_dir(dest: str, busybox: str | None = None) -> None:
    """Unpack the busybox rootfs into directory ``dest`` (for tests that need a bare rootfs)."""
    buf = io.BytesIO()
    write_rootfs_tar(buf, busybox)
    buf.seek(0)
    os.makedirs(dest, exist_ok=True)
    tarsafe.extract(buf, dest, tarsafe.LAYER)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] == "-":
        write_rootfs_tar(sys.stdout.buffer)
    else:
        tmp = argv[0] + ".tmp"
        with open(tmp, "wb") as f:
            write_rootfs_tar(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
