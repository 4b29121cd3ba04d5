"""One XLA host device per CPU core, through ``jax.config`` (no environment variables).

XLA runs a CPU convolution on a single core, so a batch split over one host device per core is
what keeps every core busy (about 2x throughput on a 2-core machine). ``jax_num_cpu_devices``
takes effect when JAX creates its CPU backend, so this must run before the first JAX
computation (importing jax is fine).
"""
from __future__ import annotations

import os

_FLAG = "--xla_force_host_platform_device_count"


def cpu_core_count() -> int:
    """The cores this process may run on (its affinity mask where the OS has one)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, cores or 1)


def use_one_host_device_per_core(count: int | None = None) -> int | None:
    """Sets ``jax_num_cpu_devices`` to ``count`` (default: one per core); returns the count set.

    Leaves everything alone (returns None) when the user already chose a count (XLA_FLAGS'
    ``--xla_force_host_platform_device_count`` or JAX_NUM_CPU_DEVICES), when
    JSYNTH_HOST_DEVICES=0, or when JAX's backends already exist (too late to matter).
    """
    if (_FLAG in os.environ.get("XLA_FLAGS", "") or os.environ.get("JAX_NUM_CPU_DEVICES")
            or os.environ.get("JSYNTH_HOST_DEVICES") == "0"):
        return None
    import jax
    from jax._src import xla_bridge  # the one public-enough probe of "backends started"

    if xla_bridge.backends_are_initialized():
        return None
    count = count or cpu_core_count()
    jax.config.update("jax_num_cpu_devices", count)
    return count
