"""XLA:CPU convolutions by Eigen rather than YNNPACK, set before JAX creates its CPU backend.

jaxlib 0.10's XLA:CPU hands each convolution to YNNPACK. On the 2x2 sub-pixel phase
convolutions of dcgan64's 16x16 -> 32x32 layer (128 -> 64 channels) Eigen's own was 20 % faster
in isolation, and dcgan64 sampling 7-20 % faster end to end (README, Benchmarks); matrix
products, most of jsynth's work, stay with YNNPACK. XLA reads XLA_FLAGS when JAX creates its
backends, so this edits XLA_FLAGS of this process (and so of the processes it starts) and must
run before the first JAX computation; it runs only when called (``jsynth.configure_cpu``).
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


def _backends_started() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge
    return xla_bridge.backends_are_initialized()


def convolutions_by_eigen() -> bool:
    """Adds the flag to XLA_FLAGS; True if it did.

    Leaves everything alone when XLA_FLAGS already sets YNNPACK's fusion types, when JAX's
    backends already exist (too late to matter), on a jaxlib other than the measured 0.10 (the
    flag is experimental), or when JSYNTH_CPU_CONVOLUTIONS=ynnpack.
    """
    flags = os.environ.get("XLA_FLAGS", "")
    if (_FLAG in flags or os.environ.get("JSYNTH_CPU_CONVOLUTIONS") == "ynnpack"
            or _jaxlib_minor() != MEASURED_ON or _backends_started()):
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={_VALUE}".strip()
    return True
