"""liblxc as an exec driver (Debian's ``python3-lxc`` binding)."""
from .driver import LxcDriver

__all__ = ["LxcDriver"]
