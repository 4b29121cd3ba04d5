"""Interleaved timing: every contender runs once per round, rounds repeat, medians are reported.

On a shared or throttling machine, load comes and goes over seconds. Timing A for a minute and
then B for a minute lets that drift decide the ratio; running A, B, C, A, B, C, ... exposes
every contender to the same conditions, so ratios of medians stay meaningful under noise.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable


def interleave(runners: dict[str, Callable[[], object]], rounds: int, warmup: int = 1,
               progress: Callable[[str], None] | None = None) -> dict[str, list[float]]:
    """Seconds per call of each runner, over ``rounds`` interleaved rounds after ``warmup`` ones."""
    times: dict[str, list[float]] = {name: [] for name in runners}
    for round_ in range(warmup + rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            elapsed = time.perf_counter() - start
            if round_ >= warmup:
                times[name].append(elapsed)
        if progress:
            progress(f"round {round_ + 1}/{warmup + rounds}")
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)
