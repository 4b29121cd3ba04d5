"""Meshes, shardings and multi-process start-up: the only device-aware code in jsynth.

Data parallelism is expressed as data: a 1-D mesh with axis ``data``, the batch sharded along
it, everything else replicated. Under ``jax.jit`` XLA inserts the all-reduces itself.
"""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

from jsynth.errors import InputError

DATA_AXIS = "data"


def data_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D data-parallel mesh over the first ``num_devices`` devices (default: all of them).

    In a multi-process run every process must take part, so ``num_devices`` must then be None
    or the global device count.
    """
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= num_devices <= len(devices):
        raise InputError(f"asked for {num_devices} devices but only {len(devices)} are visible "
                         f"({devices[0].platform}); on a CPU host set XLA_FLAGS="
                         f"--xla_force_host_platform_device_count=N before starting")
    if jax.process_count() > 1 and num_devices != len(devices):
        raise InputError(f"a multi-process run uses every device ({len(devices)}); "
                         f"num_devices={num_devices} would leave some processes out")
    return Mesh(np.array(devices[:num_devices]), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (batch) axis split over the data axis."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def check_batch_size(batch_size: int, mesh: Mesh) -> None:
    """Fails early and clearly when a global batch cannot be split evenly over the devices."""
    n = mesh.devices.size
    if batch_size % n:
        lower, upper = (batch_size // n) * n, (batch_size // n + 1) * n
        raise InputError(f"batch size {batch_size} does not divide over {n} devices; use a "
                         f"multiple of {n} (e.g. {lower or upper} or {upper}) or fewer devices")


def shard_batch(mesh: Mesh, local_batch):
    """Global arrays from this process's rows of a batch (a pytree of numpy arrays).

    In a single-process run the local rows are the whole batch; with several processes each
    passes only its own contiguous slice (``jsynth.data.process_rows``).
    """
    sharding = batch_sharding(mesh)
    return jax.tree.map(lambda x: jax.make_array_from_process_local_data(sharding, x), local_batch)


def replicate(mesh: Mesh, tree):
    """Places a pytree (of host or device arrays) replicated on every device of the mesh."""
    return jax.device_put(tree, replicated(mesh))


def replicated_shapes(init, mesh: Mesh):
    """Shapes and dtypes of ``init(key)``'s pytree, replicated on ``mesh``, without computing it:
    the abstract target a checkpoint restores to."""
    rep = replicated(mesh)
    shapes = jax.eval_shape(init, jax.random.key(0))
    return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), shapes)


def local_mesh() -> Mesh:
    """A 1-D mesh over this process's own devices, for work that needs no other process
    (each process of a multi-process ``sample`` writes its own shards)."""
    return Mesh(np.array(jax.local_devices()), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def start_distributed(coordinator: str | None = None, num_processes: int | None = None,
                      process_id: int | None = None, *, auto: bool = False,
                      init_timeout_s: int = 120, heartbeat_timeout_s: int = 30) -> bool:
    """Joins a multi-process (multi-host) JAX job; returns True if one was started.

    Explicit: all three of ``coordinator`` ("HOST:PORT"), ``num_processes`` and ``process_id``.
    ``auto``: ``jax.distributed.initialize()`` detects the cluster itself (SLURM, TPU pods,
    Kubernetes / GKE, MPI). A peer that never arrives fails the start after ``init_timeout_s``;
    a peer that dies mid-run is noticed by the coordination service's heartbeats within about
    ``heartbeat_timeout_s`` and every process then exits with an error instead of hanging.
    Must be called before any other JAX call.
    """
    explicit = (coordinator, num_processes, process_id)
    if any(v is not None for v in explicit) and not all(v is not None for v in explicit):
        raise InputError("a multi-process run needs --coordinator HOST:PORT, --num-processes N and "
                         "--process-id I together (or JSYNTH_COORDINATOR, JSYNTH_NUM_PROCESSES, "
                         "JSYNTH_PROCESS_ID)")
    if coordinator is None and not auto:
        return False
    if coordinator is not None and not 0 <= process_id < num_processes:
        raise InputError(f"--process-id must be in 0..{num_processes - 1}, got {process_id}")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=init_timeout_s,
                               heartbeat_timeout_seconds=heartbeat_timeout_s)
    return True
