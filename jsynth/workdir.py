"""The files of a training run's directory (the README's Files section: a contract other tools read) and their checks.

WORKDIR/config.json     the resolved config
WORKDIR/checkpoints/    Orbax checkpoints
WORKDIR/metrics.jsonl   one JSON object per logged step
WORKDIR/samples/        image grids written during training
WORKDIR/train.lock      held by the one `jsynth train` running in it (who holds it, inside)
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import socket

from jsynth.atomic import write_atomic
from jsynth.configs import (CHANGEABLE_ON_RESUME, OPERATIONAL_FIELDS, ConfigError, TrainConfig, differences,
                            from_json)
from jsynth.errors import UserError


class WorkdirError(UserError, ValueError):
    """A workdir that cannot be used as asked; the message says why and what to do."""


@contextlib.contextmanager
def one_trainer(workdir: str):
    """Holds WORKDIR/train.lock while a run trains: a second trainer of the workdir fails at once.

    An ``flock``: the kernel drops it when its process ends, however it ends (SIGKILL, a crash),
    so no stale lock is ever left to clean up. Two trainers would otherwise both write the
    checkpoints (Orbax then fails mid-save) and interleave ``metrics.jsonl``.

    Raises:
      WorkdirError: another process holds the lock.
    """
    os.makedirs(workdir, exist_ok=True)
    handle = open(os.path.join(workdir, "train.lock"), "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise WorkdirError(f"{workdir} is being trained by {holder}: one `jsynth train` per workdir. Wait "
                           "for it to finish (or stop it), or train in another --workdir") from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def config_path(workdir: str) -> str:
    return os.path.join(workdir, "config.json")


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def metrics_path(workdir: str) -> str:
    return os.path.join(workdir, "metrics.jsonl")


def samples_dir(workdir: str) -> str:
    return os.path.join(workdir, "samples")


def read_config(workdir: str) -> TrainConfig:
    path = config_path(workdir)
    if not os.path.exists(path):
        raise WorkdirError(f"{workdir} is not a jsynth run: {path} is missing (train one with "
                           "`jsynth train --workdir ...`)")
    try:
        with open(path) as f:
            return from_json(f.read())
    except (ValueError, TypeError) as error:
        raise WorkdirError(f"{path} is not a valid jsynth config ({error}); restore it or use a "
                           "new workdir") from None


def write_config(workdir: str, config: TrainConfig) -> None:
    os.makedirs(workdir, exist_ok=True)
    write_atomic(config_path(workdir), config.to_json())


def check_resumable(workdir: str, config: TrainConfig, allow_changes=(), checkpoint_config: dict | None = None) -> None:
    """Refuses a workdir whose run has a different config.

    Operational fields may differ, and the ``allow_changes`` fields (``CHANGEABLE_ON_RESUME``).
    The run's config is its config.json, or, where that file is gone, ``checkpoint_config`` (the
    config a checkpoint's metadata recorded). Nothing in the workdir is touched either way.
    """
    try:
        if os.path.exists(config_path(workdir)):
            saved = read_config(workdir)
        elif checkpoint_config is not None:
            saved = from_json(json.dumps(checkpoint_config))
        else:
            return
    except (WorkdirError, ConfigError) as error:
        raise WorkdirError(str(error)) from None
    changed = differences(saved, config, allow_changes)
    if changed:
        listing = ", ".join(f"{k}: {a!r} in the workdir vs {b!r} now" for k, (a, b) in sorted(changed.items()))
        changeable = sorted(set(changed) & set(CHANGEABLE_ON_RESUME))
        how = (f"; or, to continue this run with the new value, add "
               f"{' '.join('--allow-change ' + k for k in changeable)}" if changeable else "")
        raise WorkdirError(f"{workdir} holds a run of a different config ({listing}). Its checkpoints are "
                           f"intact and were not touched: resume it with its own settings (only "
                           f"{', '.join(OPERATIONAL_FIELDS)} may differ){how}, or train this config in a "
                           "new --workdir")


def check_same_data(workdir: str, metadata: dict, digest: str, name: str) -> None:
    """Refuses to resume on data whose content changed since the checkpoint (same path, new files)."""
    saved = metadata.get("data_digest")
    if saved is not None and saved != digest:
        raise WorkdirError(f"the data {name} changed since {workdir} was trained on it (content digest "
                           f"{saved[:12]} in the checkpoint, {digest[:12]} now). Its checkpoints are intact and "
                           "were not touched: restore that data to resume, or train on the new data in a "
                           "new --workdir")


def keep_schedule(workdir: str, config: TrainConfig) -> TrainConfig:
    """``config`` with the workdir's ``schedule_steps`` when it leaves that field unset.

    ``resolve`` fixes the decay length to the first run's ``steps``; without this, continuing a
    finished run with more steps would resolve another decay length and be refused as a
    different config.
    """
    if not os.path.exists(config_path(workdir)):
        return config
    try:
        saved = read_config(workdir)
    except (WorkdirError, ConfigError):
        return config  # check_resumable reports it
    kept = {} if config.schedule_steps is not None else {"schedule_steps": saved.schedule_steps}
    # A calibrated DP noise multiplier (and default delta) stay the first run's (jsynth.privacy.plan).
    kept.update({name: getattr(saved, name) for name in ("dp_noise_multiplier", "dp_delta")
                 if getattr(config, name) is None and config.dp_epsilon is not None})
    return dataclasses.replace(config, **kept)


def truncate_metrics(workdir: str, after_step: int) -> None:
    """Drops logged lines past ``after_step``: a killed run logged steps its checkpoint lacks."""
    path = metrics_path(workdir)
    if not os.path.exists(path):
        return
    kept = []
    with open(path) as f:
        for line in f:
            try:
                if json.loads(line)["step"] <= after_step:
                    kept.append(line)
            except (ValueError, KeyError):
                continue  # a half-written last line from a killed run
    write_atomic(path, "".join(kept))


def append_metrics(workdir: str, record: dict) -> None:
    with open(metrics_path(workdir), "a") as f:
        f.write(json.dumps(record) + "\n")
