"""TensorBoard event files beside ``metrics.jsonl``: where Flax users look at a run's curves.

Written with tensorboardX (a small, well-kept writer of TensorBoard's event format that needs no
TensorFlow). ``metrics.jsonl`` stays the contract other tools read; these files are for people:
``tensorboard --logdir WORKDIR/tensorboard`` (``pip install tensorboard``). Off with
``--set tensorboard=false``.
"""
from __future__ import annotations

import os


def tensorboard_dir(workdir: str) -> str:
    return os.path.join(workdir, "tensorboard")


class ScalarWriter:
    """Writes each logged step's scalars (losses, steps/s, FD) as TensorBoard scalars."""

    def __init__(self, logdir: str):
        from tensorboardX import SummaryWriter  # imported here: only a run that logs needs it

        os.makedirs(logdir, exist_ok=True)
        self._writer = SummaryWriter(logdir)

    def write(self, step: int, scalars: dict[str, float]) -> None:
        for name, value in scalars.items():
            self._writer.add_scalar(name, value, step)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()
