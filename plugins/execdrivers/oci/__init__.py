"""OCI runtimes (runc, crun, any of the daemon's ``runtimes``) as exec drivers."""
from .driver import CrunDriver, OciDriver, RuncDriver

__all__ = ["CrunDriver", "OciDriver", "RuncDriver"]
