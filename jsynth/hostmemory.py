"""Keep large freed host buffers in the heap for reuse (glibc only), when ``jsynth.configure_cpu`` asks.

XLA:CPU allocates a fresh buffer for every large intermediate of every call. glibc serves
allocations above its mmap threshold (dynamic, at most 32 MiB) with new anonymous mappings and
unmaps them on free, so every call pays a page fault and a kernel zero-fill for each 4 KiB of
each large temporary. Measured here: copying a 33.5 MB array took 30 CPU-ms that way and 4 with
the threshold raised; the Winograd lowering's transforms (``jsynth.models.winograd``) and the
sampler's chunks are such temporaries. Raising the mmap threshold (and the trim threshold, so
the heap is not handed back after each call) makes freed buffers reusable: the process keeps
its high-water mark of host memory instead of faulting it in again every call. It applies to the
whole process (PyTorch in it too), which is why only an explicit call sets it.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
THRESHOLD_BYTES = 1 << 30


def keep_freed_host_buffers() -> bool:
    """Raises glibc's mmap and trim thresholds to 1 GiB; True if both were accepted.

    A no-op (False) off Linux/glibc or when JSYNTH_HOST_MALLOC=0.
    """
    if not sys.platform.startswith("linux") or os.environ.get("JSYNTH_HOST_MALLOC") == "0":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, THRESHOLD_BYTES)) & bool(mallopt(_M_TRIM_THRESHOLD, THRESHOLD_BYTES))
