"""One XLA host device per CPU core, set before JAX starts.

XLA runs a CPU convolution on a single core, so a batch split over one host device per core is
what keeps every core busy (about 2x throughput on a 2-core machine). This must happen before
``jax`` is imported, which is why it lives in a module that does not import it.
"""
from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def use_one_host_device_per_core() -> bool:
    """Adds the host-device-count flag to XLA_FLAGS; True if it did.

    Leaves everything alone when the user already chose a count in XLA_FLAGS, when JAX is
    already imported (too late to matter), or when JSYNTH_HOST_DEVICES=0.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags or "jax" in sys.modules or os.environ.get("JSYNTH_HOST_DEVICES") == "0":
        return False
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={max(1, cores or 1)}".strip()
    return True
