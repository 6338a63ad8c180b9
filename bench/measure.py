"""The rows of BENCHMARKS.md that are not HTTP paths driven by wrk: jobs, scale and fan-out.

Each module listed in `MODULES` exposes `measure(ctx: Context) -> list[Measurement]`. bench.run
calls them in order after the HTTP rounds, on the same running stack, and writes their rows in a
second table. A module measures its own baseline in the same run (a raw `COPY`, a raw `UPDATE`,
the stand-in's limit) so that the ratio holds on a busy machine too.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.deploy.stack import Stack

# Run in this order: the data generator's rows (admin changelists) after the jobs that make
# their own data, so that each job's timing is not taken on a table another row just filled.
MODULES = (
    "bench.keygen",
    "bench.expiry",
    "bench.admin_scale",
    "bench.rolesync",
    "bench.websocket",
)


@dataclass(frozen=True)
class Context:
    """What a row module gets: the running stack (nginx, two web instances, one worker,
    PostgreSQL, Redis; `stack.manage(...)` runs manage.py with the stack's .env,
    `stack.database_url` is its database), whether this is bench-quick (smaller scale, said in
    the row), a progress printer and a scratch directory."""

    stack: Stack
    quick: bool
    say: Callable[[str], None]
    root: Path


@dataclass
class Measurement:
    """One row. `ratio` is figure / baseline when higher is better, baseline-relative time
    when lower is better: `goal` says which, in words, e.g. "≥ 0.6x COPY, ≥ 20,000 keys/s,
    memory flat" or "≤ 2x the raw UPDATE's time"."""

    title: str
    figure: str  # the measured value with its unit, e.g. "21,300 keys/s"
    baseline: str  # the baseline with its unit, or "—" when the goal is absolute
    ratio: str  # e.g. "0.71x", or "—"
    goal: str
    met: bool
    details: list[str] = field(default_factory=list)  # scale, memory, queries, per round...
    profile: str | None = None  # markdown: top costs and the reason, when the goal is missed


def measure_all(ctx: Context, only: set[str] | None = None) -> list[Measurement]:
    rows: list[Measurement] = []
    for name in MODULES:
        if only is not None and name.rsplit(".", 1)[1] not in only:
            continue
        module = importlib.import_module(name)
        ctx.say(f"measuring {name}")
        rows.extend(module.measure(ctx))
    return rows


def report_rows(rows: list[Measurement]) -> list[str]:
    """The second table and each row's details, as markdown lines."""
    if not rows:
        return []
    lines = ["", "## Jobs, scale and fan-out", "",
             "| what | measured | baseline | ratio | goal | met |", "|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row.title} | {row.figure} | {row.baseline} | {row.ratio} | "
                     f"{row.goal} | {'met' if row.met else '**missed**'} |")
    for row in rows:
        if row.details:
            lines += ["", f"### {row.title}", "", *[f"- {line}" for line in row.details]]
        if row.profile:
            lines += ["", f"#### Profile and reason: {row.title} (goal missed)", "",
                      row.profile.rstrip()]
    return lines
