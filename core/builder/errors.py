"""The builder's errors: a build that cannot go on is a :class:`BuildError` (HTTP 400 before the
stream starts, an ``error`` message in it afterwards)."""
from __future__ import annotations

from dockyard.hookspecs.errors import DockyardError


class BuildError(DockyardError):
    status = 400


class ParseError(BuildError):
    """The Dockerfile itself is wrong: found before any step runs, named by its line (dockerd's
    words: ``dockerfile parse error line 7: unknown instruction: FOO``)."""

    def __init__(self, message: str, line: int = 0) -> None:
        self.line = line
        super().__init__(f"dockerfile parse error line {line}: {message}" if line else message)


class StepFailed(BuildError):
    """A RUN step's command exited non-zero: dockerd reports the code in ``errorDetail`` (the
    docker CLI exits with it)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class StepError(BuildError):
    """A step that could not be done (a file not in the context, a download refused...),
    named by its Dockerfile line."""

    def __init__(self, message: str, line: int) -> None:
        self.line = line
        super().__init__(f"Dockerfile line {line}: {message}")


def at_line(exc: BuildError, line: int) -> BuildError:
    """``exc`` with the Dockerfile line it comes from, unless it names one already."""
    if isinstance(exc, (ParseError, StepError, StepFailed)) or not line:
        return exc
    return StepError(exc.message, line)
