"""The training loop: the one impure place (data, devices, files, clocks, progress bars).

``run(config, workdir)`` trains from scratch, or resumes from the newest readable checkpoint in
the workdir. Everything a step depends on is a function of (config, step): the key is
``fold_in(step_key, step)`` and the batch is ``batch_indices(step, ...)``, so a run killed at any
moment and started again with the same command reaches bitwise the same parameters.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import time

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from jsynth import data as jdata
from jsynth import parallel, sampling, workdir as wd
from jsynth.builders import build_family
from jsynth.checkpoint import Checkpointer
from jsynth.configs import TrainConfig, resolve
from jsynth.errors import UserError
from jsynth.images import save_grid
from jsynth.families import ModelFamily
from jsynth.preemption import PreemptionWatch
from jsynth.privacy import plan as dp_plan
from jsynth.train import table_run
from jsynth.train.steps import make_step
from jsynth.train.stream import packed_batches
from jsynth.train.tensorboard import ScalarWriter, tensorboard_dir


class NonFiniteLossError(UserError, FloatingPointError):
    """Training diverged; the message names the step range and the checkpoint kept."""


@dataclasses.dataclass(frozen=True)
class RunSetup:
    """What ``prepare`` resolves before training: shared by ``run``, ``--dry-run`` and sampling."""

    config: TrainConfig
    dataset: jdata.Dataset
    num_classes: int
    mesh: jax.sharding.Mesh
    family: ModelFamily

    @functools.cached_property
    def data_digest(self) -> str:
        """The data's content digest (``jsynth.data.content_digest``), kept in checkpoints."""
        if hasattr(self.dataset, "content_digest"):  # a table (jsynth.train.table_run)
            return self.dataset.content_digest()
        return jdata.content_digest(self.dataset)


def prepare(config: TrainConfig, dataset: jdata.Dataset | None = None) -> RunSetup:
    """Resolves the config, loads the data and builds the model family; checks they fit together."""
    config = resolve(config)
    dataset = dataset if dataset is not None else table_run.load_training_data(config)
    if config.conditional and dataset.labels is None:
        raise jdata.DataError(f"--conditional needs labels, but {dataset.name} has none (for "
                              "folder: data, put each class in its own sub-folder)")
    if config.batch_size > len(dataset):
        raise jdata.DataError(f"batch size {config.batch_size} exceeds the {len(dataset)} examples "
                              f"of {dataset.name}")
    num_classes = dataset.num_classes if config.conditional else 0
    mesh = parallel.data_mesh(config.num_devices)
    parallel.check_batch_size(config.batch_size, mesh)
    config = dp_plan.resolve_dp(config, len(dataset))  # DP: calibrated noise, budget checked (no-op without)
    family = dp_plan.private_family(build_family(config, dataset.image_shape, num_classes), config, len(dataset))
    return RunSetup(config, dataset, num_classes, mesh, family)


def describe(setup: RunSetup) -> dict:
    """The resolved plan of a run (what ``--dry-run`` prints), without training."""
    sizes = setup.family.parameter_counts(jax.eval_shape(setup.family.init, jax.random.key(0)))
    return {"config": dataclasses.asdict(setup.config), "data": setup.dataset.name,
            "examples": len(setup.dataset), "image_shape": list(setup.dataset.image_shape),
            "num_classes": setup.num_classes, "devices": int(setup.mesh.devices.size),
            "platform": setup.mesh.devices.flat[0].platform, "processes": jax.process_count(),
            "parameters": sizes}


def abstract_state(setup: RunSetup):
    """Shapes, dtypes and (replicated) shardings of the state: the target a checkpoint restores to."""
    return parallel.replicated_shapes(setup.family.init, setup.mesh)


def checkpoint_metadata(setup: RunSetup, step: int, train_seconds: float = 0.0) -> dict:
    return {"config": dataclasses.asdict(setup.config), "step": step,
            "image_shape": list(setup.dataset.image_shape), "num_classes": setup.num_classes,
            "class_names": list(setup.dataset.class_names), "data": setup.dataset.name,
            "data_digest": setup.data_digest, "train_seconds": round(train_seconds, 3),
            "data_position": jdata.data_position(step, setup.config.batch_size, len(setup.dataset)),
            **dp_plan.dp_record(setup.config, len(setup.dataset), step)}


def run(config: TrainConfig, workdir: str, *, dataset: jdata.Dataset | None = None,
        time_limit_s: float | None = None, allow_changes: tuple[str, ...] = ()):
    """Trains (or resumes) ``config`` in ``workdir``; returns the final state.

    Args:
      dataset: the data, already loaded (default: ``config.data`` is loaded).
      time_limit_s: a wall-clock budget for the whole run, resumptions included (the time
        spent so far is kept in the checkpoints): training stops at the first step past it,
        saves and returns. A rerun with a larger budget continues bitwise.
      allow_changes: fields of ``configs.CHANGEABLE_ON_RESUME`` that may differ from the
        workdir's config (e.g. a lower learning rate after a divergence).

    Raises:
      WorkdirError: the workdir holds a run of a different config or of other data, or another
        trainer is running in it. Nothing in the workdir is changed then.
      NonFiniteLossError: losses became NaN/inf (the last good checkpoint is kept).
    """
    if time_limit_s is not None and not time_limit_s > 0:
        raise UserError(f"the time limit must be positive, got {time_limit_s} s")
    workdir = os.path.abspath(workdir)
    # Process 0 holds the workdir's lock for the run (a multi-process run is one trainer).
    with wd.one_trainer(workdir) if jax.process_index() == 0 else contextlib.nullcontext():
        return _train(config, workdir, dataset, time_limit_s, tuple(allow_changes))


def _train(config: TrainConfig, workdir: str, dataset: jdata.Dataset | None, time_limit_s: float | None,
           allow_changes: tuple[str, ...]):
    config = wd.keep_schedule(workdir, config)
    # A resumed table run encodes with the transform saved in its workdir.
    setup = prepare(config, dataset if dataset is not None else table_run.load_training_data(config, workdir))
    config, mesh, family = setup.config, setup.mesh, setup.family
    is_chief = jax.process_index() == 0
    checkpoints = Checkpointer(wd.checkpoint_dir(workdir), config.max_to_keep)
    latest = checkpoints.latest_metadata()
    wd.check_resumable(workdir, config, allow_changes, latest and latest.get("config"))

    init_key, step_key = jax.random.split(jax.random.key(config.seed))
    restored = checkpoints.restore_latest(abstract_state(setup))
    spent = 0.0  # wall-clock seconds earlier runs of this workdir trained for
    if restored is None:
        state = jax.jit(family.init, out_shardings=parallel.replicated(mesh))(init_key)
        start = 0
    else:
        state, metadata, start = restored
        wd.check_same_data(workdir, metadata, setup.data_digest, setup.dataset.name)
        spent = float(metadata.get("train_seconds", 0.0))
    # Written only once the run is known to be resumable: a refused resume leaves config.json as it was.
    if is_chief:
        wd.write_config(workdir, config)
        wd.truncate_metrics(workdir, start)
    if time_limit_s is not None and spent >= time_limit_s:
        if is_chief:
            print(f"{workdir} has already trained for {spent:.0f} s of its {time_limit_s:.0f} s budget "
                  f"(step {start}); give a larger --time-limit to continue it", flush=True)
        checkpoints.close()
        return state
    clock = _Budget(spent, time_limit_s, check_every=config.log_every)

    train_step = make_step(family, mesh)
    rows = jdata.process_rows(config.batch_size, jax.process_index(), jax.process_count())
    table_batches = table_run.batch_source(setup, workdir, rows)  # tables: step -> batch; None for images
    packed = packed_batches(setup, rows, start)  # packed data: Grain streams device batches; None otherwise
    images = (jdata.to_model_range(setup.dataset.images, family.data_range)
              if table_batches is None and packed is None else None)
    labels = setup.dataset.labels
    n = len(setup.dataset)
    dp_batches = dp_plan.poisson_batches(config, images, labels if setup.num_classes else None, mesh.devices.size,
                                         jax.process_index(), jax.process_count())  # None without DP
    progress = tqdm(total=config.steps, initial=start, desc=f"train {config.model}", unit="step",
                    disable=not (config.progress and is_chief), dynamic_ncols=True)
    last_checked, last_time, last_logged = start, time.perf_counter(), start
    # FD on a schedule, logged as "fd"; the best state by FD kept in WORKDIR/best/ (jsynth.evaluate).
    fd_tracker = None
    if config.fd_every:
        from jsynth.evaluate.inloop import FDTracker
        fd_tracker = FDTracker.for_run(setup, workdir, progress=config.progress and is_chief)
    board = ScalarWriter(tensorboard_dir(workdir)) if config.tensorboard and is_chief else None
    metrics = None
    with PreemptionWatch() as preemption:
        for step in range(start, config.steps):
            if packed is not None:  # read by Grain (this process's rows, uint8), scaled on the devices
                device_batch = next(packed)
            else:
                index = jdata.batch_indices(step, config.batch_size, n, config.seed)[rows]
                batch = {"image": images[index]} if table_batches is None else table_batches(step)
                if setup.num_classes and table_batches is None:
                    batch["label"] = labels[index]
                batch = dp_batches.batch(step) if dp_batches is not None else batch
                device_batch = parallel.shard_batch(mesh, batch)
            previous = metrics
            state, metrics = train_step(state, device_batch, jax.random.fold_in(step_key, step))
            # At most two steps in flight: the next batch is still prepared while a step runs, but
            # XLA:CPU aborts (collective rendezvous timeout) when hundreds of all-reducing steps
            # are queued at once.
            jax.block_until_ready(previous)
            done = step + 1
            progress.update(1)
            out_of_time = clock.spent_at(done)
            preempted = preemption.should_stop(done) or out_of_time
            fd_now = fd_tracker is not None and done % config.fd_every == 0
            log_now = done % config.log_every == 0 or done == config.steps or fd_now or preempted
            save_now = done % config.checkpoint_every == 0 or done == config.steps or preempted
            if log_now or save_now:
                values = {k: float(v) for k, v in jax.device_get(metrics).items()}
                values.update(dp_plan.epsilon_metric(config, n, done))
                if not all(math.isfinite(v) for v in values.values()):
                    raise _diverged(checkpoints, f"losses became non-finite between step "
                                                 f"{last_checked + 1} and step {done} ({values})",
                                    config.learning_rate)
                last_checked = done
                if fd_now:
                    values["fd"] = fd_tracker.update(done, state, checkpoint_metadata(setup, done, clock.seconds()))
            if log_now and is_chief:
                now = time.perf_counter()
                rate = (done - last_logged) / max(now - last_time, 1e-9)
                wd.append_metrics(workdir, {"step": done, "time": time.time(), **values,
                                            "steps_per_s": rate})
                if board is not None:
                    board.write(done, {**values, "steps_per_s": rate})
                progress.set_postfix({k: f"{v:.3g}" for k, v in values.items()}, refresh=False)
                last_time, last_logged = now, done
            if save_now:
                if not bool(_all_finite(state)):  # finite losses can still end in a NaN update
                    raise _diverged(checkpoints, f"the parameters became non-finite between step "
                                                 f"{last_checked} and step {done}", config.learning_rate)
                checkpoints.save(done, state, checkpoint_metadata(setup, done, clock.seconds()))
            if is_chief and (images is not None or packed is not None) and (done % config.sample_every == 0 or done == config.steps):
                write_sample_grid(setup, state, os.path.join(wd.samples_dir(workdir), f"step_{done:07d}.png"))
            if preempted:
                if is_chief and out_of_time:
                    print(f"time limit reached: trained {clock.seconds():.0f} s of {time_limit_s:.0f} s; "
                          f"checkpoint saved at step {done} in {checkpoints.directory}; rerun with a larger "
                          "--time-limit (or none) to continue", flush=True)
                elif is_chief:
                    print(f"preempted (SIGTERM or Ctrl-C): checkpoint saved at step {done} in "
                          f"{checkpoints.directory}; "
                          "rerun the same command to resume", flush=True)
                break
    progress.close()
    if board is not None:
        board.close()
    checkpoints.close()
    if fd_tracker is not None:
        fd_tracker.close()
    return state


class _Budget:
    """Wall-clock seconds trained (this run plus ``spent`` before it) against an optional limit.

    Processes' clocks differ, so in a multi-process run process 0 decides, every ``check_every``
    steps, and every process stops at the step it broadcast.
    """

    def __init__(self, spent: float, limit: float | None, check_every: int):
        self._spent, self._limit, self._every = spent, limit, check_every
        self._started = time.perf_counter()
        self._multi_process = jax.process_count() > 1

    def seconds(self) -> float:
        return self._spent + time.perf_counter() - self._started

    def spent_at(self, step: int) -> bool:
        if self._limit is None:
            return False
        if not self._multi_process:
            return self.seconds() >= self._limit
        if step % self._every:
            return False
        from jax.experimental import multihost_utils
        return bool(multihost_utils.broadcast_one_to_all(self.seconds() >= self._limit))


def _diverged(checkpoints: Checkpointer, what: str, learning_rate: float) -> NonFiniteLossError:
    """Closes the checkpoints (the last good one stays) and says how to go on."""
    checkpoints.wait()
    kept = checkpoints.latest_step()
    checkpoints.close()
    where = f"the last good checkpoint (step {kept}) is kept" if kept is not None else "no checkpoint was saved yet"
    return NonFiniteLossError(
        f"{what}; {where} in {checkpoints.directory}. Lower the learning rate and continue: rerun the "
        f"same command with --set learning_rate={learning_rate / 2:g} --allow-change learning_rate, or "
        "start a new --workdir")


@jax.jit
def _all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
              if jnp.issubdtype(x.dtype, jnp.floating)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def write_sample_grid(setup: RunSetup, state, path: str, seed: int = 0) -> str:
    """A grid of samples: one column per class for conditional models (balanced labels)."""
    columns = setup.num_classes or 8
    rows = max(1, 64 // columns) if setup.num_classes <= 16 else 1
    num = rows * columns
    # Host copies: the grid is then computed on this process alone, with no collectives, which
    # is what lets process 0 draw it while the others carry on.
    variables = jax.device_get(setup.family.sample_variables(state))
    images, _ = sampling.sample(setup.family.decode, variables, num=num,
                                latent_dim=setup.family.latent_dim, seed=seed, chunk_size=num,
                                num_classes=setup.num_classes)
    return save_grid(images, path, columns=columns)
