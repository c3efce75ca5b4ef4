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


def at_line(exc: BuildError, line: int) -> BuildError:
    """``exc`` with the Dockerfile line it comes from, unless it names one already."""
    if isinstance(exc, ParseError) and exc.line or not line:
        return exc
    if isinstance(exc, StepFailed):
        return exc
    return ParseError(exc.message, line)
