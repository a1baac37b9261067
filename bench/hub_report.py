"""The hub scenarios' tables: one section per scenario, cells as median (min-max) over
the repetitions, ratios of medians against a baseline measured in the same run, and
the issue's goal with whether this run met it.

Kept apart from report.py, whose table is the fan-out's; the cells use its Spread so
every table of docs/BENCHMARKS.md reads the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bench.report import Spread
from bench.scenarios import GENERATOR_LIMIT


@dataclass(frozen=True, slots=True)
class Section:
    """One scenario's part of the report (stdout and docs/BENCHMARKS.md)."""

    title: str
    about: str  # what was measured and how, pinning included
    table: str  # markdown
    goal: str  # the goal and whether it is met
    notes: tuple[str, ...] = ()

    def markdown(self) -> str:
        notes = "".join(f"- {note}\n" for note in self.notes)
        return f"## {self.title}\n\n{self.about}\n\n{self.table}\n{self.goal}\n\n{notes}"


def spread(values: Sequence[float | None]) -> Spread | None:
    return Spread.of([v for v in values if v is not None])


def cell(values: Sequence[float | None], fmt: str) -> str:
    found = spread(values)
    return found.show(fmt) if found else "-"


def ratio(mine: Sequence[float | None], base: Sequence[float | None]) -> float | None:
    a, b = spread(mine), spread(base)
    if a is None or b is None or b.median == 0:
        return None
    return a.median / b.median


def show_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x"


def generator_cell(fractions: Sequence[float]) -> str:
    """The generator's busiest repetition; `gen-bound` where it may have been the limit."""
    if not fractions:
        return "-"
    top = max(fractions)
    return f"{top * 100:.0f} %" + (" gen-bound" if top >= GENERATOR_LIMIT else "")


def generator_note(fractions: Sequence[float]) -> tuple[str, ...]:
    if not fractions or max(fractions) < GENERATOR_LIMIT:
        return ()
    return (
        f"`gen-bound`: the generator used ≥ {GENERATOR_LIMIT:.0%} of its core in some "
        "repetition, so its figures there are a floor for the hub, not its limit.",
    )


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def verdict(
    goal: str,
    measured: float | None,
    *,
    at_most: float | None = None,
    at_least: float | None = None,
    unit: str = "x",
    caveat: str = "",
) -> str:
    """'Goal: ... — met (1.23x)' or 'not met' or 'not measured'; `caveat` says why a
    figure cannot be trusted on this machine."""
    if measured is None:
        result = "not measured"
    else:
        met = (at_most is None or measured <= at_most) and (
            at_least is None or measured >= at_least
        )
        result = f"{'met' if met else 'NOT met'} ({measured:.2f}{unit})"
    return f"**Goal:** {goal}: {result}.{' ' + caveat if caveat else ''}"
