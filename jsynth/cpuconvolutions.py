"""XLA:CPU convolutions by Eigen rather than YNNPACK, set before JAX starts.

jaxlib 0.10's XLA:CPU hands each convolution to YNNPACK. On the 2x2 sub-pixel phase
convolutions of dcgan64's 16x16 -> 32x32 layer (128 -> 64 channels) Eigen's own was 20 % faster
in isolation, and dcgan64 sampling 7-20 % faster end to end (README, Benchmarks); matrix
products, most of jsynth's work, stay with YNNPACK. Like ``jsynth.hostdevices`` this edits
XLA_FLAGS, so it must run before ``jax`` is imported.
"""
from __future__ import annotations

import importlib.metadata
import os
import sys

_FLAG = "--xla_cpu_experimental_ynn_fusion_type"
_VALUE = "-individual_convolution"  # remove convolutions from YNNPACK's default list
MEASURED_ON = (0, 10)  # jaxlib minor version the flag was measured on; an unknown flag aborts XLA


def _jaxlib_minor() -> tuple[int, int] | None:
    try:
        major, minor = importlib.metadata.version("jaxlib").split(".")[:2]
        return int(major), int(minor)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return None


def convolutions_by_eigen() -> bool:
    """Adds the flag to XLA_FLAGS; True if it did.

    Leaves everything alone when XLA_FLAGS already sets YNNPACK's fusion types, when JAX is
    already imported (too late to matter), on a jaxlib other than the measured 0.10 (the flag
    is experimental), or when JSYNTH_CPU_CONVOLUTIONS=ynnpack.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if (_FLAG in flags or "jax" in sys.modules or os.environ.get("JSYNTH_CPU_CONVOLUTIONS") == "ynnpack"
            or _jaxlib_minor() != MEASURED_ON):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={_VALUE}".strip()
    return True
