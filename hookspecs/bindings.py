"""Python bindings that come from Debian rather than PyPI, and what a driver loses without them.

Some host libraries have no usable PyPI package (libseccomp's binding is not on PyPI; the PyPI
``btrfsutil`` does not import against Debian 12's library), so dockyard uses Debian's
``python3-*`` modules. A ``pip install .`` into a venv does not see them: the daemon must say
which is missing and what still works. A driver declares what it needs as a class attribute::

    class NativeDriver(ExecDriver):
        bindings = (Binding("seccomp", "python3-seccomp",
                            "seccomp profiles cannot be applied: ..."),)

and the daemon checks every installed driver's ``bindings`` at start-up (:func:`advice`).
"""
from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
import sys
import sysconfig

DEBIAN_DIST_PACKAGES = "/usr/lib/python3/dist-packages"


@dataclasses.dataclass(frozen=True)
class Binding:
    """One module a driver imports from a Debian package."""

    #: the import name (``seccomp``)
    module: str
    #: the Debian package that ships it (``python3-seccomp``)
    package: str
    #: what does not work without it, as a sentence fragment
    without: str

    def available(self) -> bool:
        return importlib.util.find_spec(self.module) is not None


def advice(binding: Binding) -> str:
    """What to tell the operator when ``binding`` cannot be imported by this interpreter."""
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    mine = os.path.join(DEBIAN_DIST_PACKAGES, binding.module + suffix)
    theirs = sorted(glob.glob(os.path.join(DEBIAN_DIST_PACKAGES, binding.module + ".cpython-*.so")))
    site = sysconfig.get_paths()["purelib"]
    here = f"Python {sys.version.split()[0]} ({sys.executable})"
    if os.path.exists(mine):
        fix = (f"Debian's {binding.package} is installed but not visible to {here}: link {mine} "
               f"into {site} (`make venv` and `make install` do)")
    elif theirs:
        fix = (f"Debian's {binding.package} is built for another Python ({os.path.basename(theirs[0])}) "
               f"than {here}: run dockyard from a venv of Debian's /usr/bin/python3")
    else:
        fix = (f"install it (apt-get install {binding.package}) and link "
               f"{DEBIAN_DIST_PACKAGES}/{binding.module}.cpython-*.so into {site} "
               "(`make venv` and `make install` do both)")
    return f"{binding.package} is missing: {binding.without}. To fix: {fix}."
