"""liblxc as an exec driver (Debian's ``python3-lxc`` binding).

The driver class is imported on first use (PEP 562): the container's monitor, the starter, the
exec helper and the hook run as ``python -m`` of this package's modules, and a start should not
pay for importing the driver (and asyncio's streams, the errors...) in each of them.
"""
from typing import TYPE_CHECKING, Any

__all__ = ["LxcDriver"]


def __getattr__(name: str) -> Any:
    if name == "LxcDriver":
        from .driver import LxcDriver

        return LxcDriver
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:
    from .driver import LxcDriver
