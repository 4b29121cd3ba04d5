"""``jsynth bench sampling|train``: comma lists in, one record per line out (JSON or a table).

The CLI only parses; this turns its strings into ``runner`` calls, prints each record as soon
as it is measured (``--json``: one JSON object per line, keys as in the README) and, with
``out``, also writes them all to a JSON-lines file.
"""
from __future__ import annotations

import json
from typing import IO

DEFAULTS = {"sampling": {"arch": "dcgan28,dcgan64,mlpvae", "batch_size": "256,1024"},
            "train": {"arch": "dcgan28", "batch_size": "256"},
            "input": {"arch": "", "batch_size": "256"}}


def _ints(text: str | None) -> list[int | None]:
    if text in (None, "", "all"):
        return [None]
    return [None if part == "all" else int(part) for part in text.split(",")]


def _words(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def bench_command(kind: str, *, arch: str | None = None, batch_size: str | None = None,
                  num: int | None = None, devices: str | None = None, dtype: str = "float32",
                  upsample: str = "subpixel", torch: bool = False, torch_modes: str | None = None,
                  rounds: int = 5, steps: int = 4, as_json: bool = False, out: str | None = None,
                  stream: IO | None = None, peak_size: int = 1536, data: str = "digits") -> list[dict]:
    """Runs ``jsynth bench KIND`` and prints its records; returns them.

    Args:
      kind: "sampling", "train" or "input" (the input pipeline: packed vs in-memory ``data``).
      arch, batch_size, devices, dtype, upsample, torch_modes: comma lists ("1,2", "all").
      torch: include the PyTorch twins (skipped with a message when torch is missing).
      rounds: interleaved timing rounds (medians are reported).
      steps: training steps per repetition (train only).
    """
    import sys

    from jsynth.bench import runner

    if kind not in DEFAULTS:
        raise ValueError(f"unknown benchmark {kind!r}; known: {', '.join(DEFAULTS)}")
    stream = stream or sys.stdout
    sink = open(out, "w") if out else None

    def emit(record: dict) -> None:
        print(json.dumps(record) if as_json else runner.format_row(record), file=stream, flush=True)
        if sink:
            sink.write(json.dumps(record) + "\n")
            sink.flush()

    archs = _words(arch or DEFAULTS[kind]["arch"])
    sizes = [b for b in _ints(batch_size or DEFAULTS[kind]["batch_size"]) if b]
    modes = _words(torch_modes) if torch_modes else (list(runner.DEFAULT_TORCH_MODES) if torch else [])
    common = dict(devices=_ints(devices), dtypes=_words(dtype), upsamples=_words(upsample),
                  torch_modes=modes, rounds=rounds, emit=emit, peak_size=peak_size)
    try:
        if kind == "sampling":
            return runner.run_sampling(archs, sizes, num, **common)
        if kind == "input":
            from jsynth.bench.input_bench import run_input
            return run_input(data, sizes, steps, _ints(devices), rounds, emit=emit)
        if archs != ["dcgan28"]:
            raise ValueError(f"the training benchmark is dcgan28 only, got --arch {','.join(archs)}")
        return runner.run_train(sizes, steps, **common)
    finally:
        if sink:
            sink.close()
