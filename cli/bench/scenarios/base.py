"""The shape of a scenario: what it measures (metrics), on which subjects, and one sample.

The runner (:mod:`..runner`) calls :meth:`Scenario.setup` once, :meth:`Scenario.prepare` per
subject, then :meth:`Scenario.sample` round after round, each round visiting every subject (in
an order that rotates), so drift of the machine hits all subjects alike; then
:meth:`Scenario.finish` per subject and :meth:`Scenario.teardown`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..subjects.base import CAP_CONTAINERS, Subject

if TYPE_CHECKING:
    from ..runner import Context


@dataclass(frozen=True)
class Metric:
    """One figure a scenario reports: one chart, one row group of the table."""

    key: str
    title: str
    unit: str            # "ms", "s", "MB/s", "KiB"
    better: str = "lower"  # or "higher"


class Scenario:
    """Subclasses set the class attributes and implement :meth:`sample`. One instance serves
    one run; it may keep state between its calls."""

    name = ""
    title = ""
    #: what a subject must be able to do (see ``subjects.base.CAP_*``)
    needs: frozenset[str] = frozenset({CAP_CONTAINERS})
    #: why a subject without ``needs`` is skipped
    needs_reason = "cannot run detached containers"
    #: measured for every network driver (True) or only on the first of ``--net-drivers``
    net_axis = False
    metrics: tuple[Metric, ...] = ()
    #: sizes and counts, full and ``--quick`` (read-only); recorded in the results
    full: dict[str, Any] = {}
    quick: dict[str, Any] = {}
    #: samples per subject: full and quick (``--runs`` overrides both)
    runs_full = 10
    runs_quick = 3

    def params(self, quick: bool) -> dict[str, Any]:
        return {**self.full, **(self.quick if quick else {})}

    def applies(self, subject: Subject, ctx: "Context") -> str | None:
        """None when ``subject`` takes part, else why not (silently left out when the scenario
        is not about networks and the subject is another network mode of an engine measured)."""
        if not self.needs <= subject.caps:
            return f"{subject.engine_name} {self.needs_reason}"
        return None

    def on_axis(self, subject: Subject, ctx: "Context") -> bool:
        """Whether ``subject`` is meant for this scenario at all (else it is left out without a
        word): subjects made for one scenario only, and the other network modes of an engine
        when the scenario is not about networks."""
        if subject.only is not None and self.name not in subject.only:
            return False
        return self.net_axis or subject.net == ctx.primary_net

    def setup(self, ctx: "Context", subjects: list[Subject]) -> None:
        """Once, before any sample (make images, start a registry ...)."""

    def prepare(self, ctx: "Context", subject: Subject) -> None:
        """Per subject, before its first sample (warm-up, a container to exec in ...)."""

    def sample(self, ctx: "Context", subject: Subject, index: int) -> dict[str, float]:
        """One sample: metric key → value in the metric's unit."""
        raise NotImplementedError

    def finish(self, ctx: "Context", subject: Subject) -> None:
        """Per subject, after its last sample (also after a failure)."""

    def teardown(self, ctx: "Context") -> None:
        """Once, at the end (also after a failure)."""
