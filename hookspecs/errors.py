"""The one error hierarchy of dockyard.

Drivers raise these; the daemon maps them to HTTP status codes in exactly one place
(``dockyard.core.daemon.errors``) and answers with Docker's ``{"message": ...}`` body.
"""
from __future__ import annotations


class DockyardError(Exception):
    """Base of every error dockyard raises on purpose. Maps to HTTP 500."""

    status = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # pragma: no cover - trivial
        return self.message


class NotFound(DockyardError):
    """A named object (image, container, network, layer...) does not exist. HTTP 404."""

    status = 404


class Conflict(DockyardError):
    """The request conflicts with the current state (name in use, container running...). HTTP 409."""

    status = 409


class InvalidParameter(DockyardError):
    """The request itself is malformed or names an impossible value. HTTP 400."""

    status = 400


class Unauthorized(DockyardError):
    """The credentials given were refused (a registry login). HTTP 401.

    Never the answer to a pull or push: the docker CLI answers a 401 there with an interactive
    login prompt."""

    status = 401


class Forbidden(DockyardError):
    """The operation is never allowed on this object (removing a predefined network...). HTTP 403."""

    status = 403


class Unavailable(DockyardError):
    """The request needs something this node is not (a swarm manager). HTTP 503."""

    status = 503


class NotModified(DockyardError):
    """Nothing to do (start of a running container, stop of a stopped one). HTTP 304."""

    status = 304


class DriverNotSupported(DockyardError):
    """A driver cannot run on this host; ``reason`` names the missing feature.

    Raised from a driver's constructor. Driver selection moves on to the next candidate only on
    this error (moby's ``ErrNotSupported``); the conformance suites skip with ``reason``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DriverNotFound(DockyardError):
    """No driver of ``kind`` is installed under ``name``; ``available`` lists the ones that are."""

    status = 400

    def __init__(self, kind: str, name: str, available: list[str]) -> None:
        self.kind, self.name, self.available = kind, name, sorted(available)
        super().__init__(
            f"unknown {kind} driver {name!r}; installed {kind} drivers: "
            + (", ".join(self.available) or "(none)")
        )


class ExecError(DockyardError):
    """The container process could not be started (executable missing, bad workdir, bad user...).

    ``exit_code`` is what Docker reports for the failure: 127 for a missing executable, 126 for one
    that cannot be executed, 128 otherwise.
    """

    status = 400

    def __init__(self, message: str, exit_code: int = 128) -> None:
        super().__init__(message)
        self.exit_code = exit_code
