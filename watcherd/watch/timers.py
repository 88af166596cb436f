"""The watcher's timers: each of its periodic jobs runs when due, between rounds of events, on
the main loop's thread. A timer's interval is read again at each run (``every``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Timer:
    due: float  # time.monotonic() of its next run
    every: Callable[[], float]
    run: Callable[[], Any]


class Timers:
    """The main loop's timers, in the order they run when several are due."""

    def __init__(self, timers: list[Timer]) -> None:
        self.timers = timers

    def run_due(self, now: float) -> None:
        for timer in self.timers:
            if now >= timer.due:
                timer.due = now + timer.every()
                timer.run()

    def restart(self, run: Callable[[], Any], now: float) -> None:
        """``run`` just ran outside its timer (a rescan asked for): its next run counts from
        ``now``."""
        for timer in self.timers:
            if timer.run == run:
                timer.due = now + timer.every()
