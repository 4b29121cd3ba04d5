"""``configure_cpu``: the one explicit call that tunes a process for XLA:CPU.

Importing jsynth changes nothing in the process. The command line, the benchmarks and the
examples call ``configure_cpu()`` first; a user's own program may call it too, before its first
JAX computation (importing jax before it is fine). Each part keeps its opt-out:

* one XLA host device per CPU core (``jax_num_cpu_devices``; ``jsynth.hostdevices``): skipped when
  the user chose a count (XLA_FLAGS / JAX_NUM_CPU_DEVICES) or JSYNTH_HOST_DEVICES=0;
* XLA:CPU convolutions by Eigen on jaxlib 0.10 (adds a flag to XLA_FLAGS, which processes started
  from this one inherit; ``jsynth.cpuconvolutions``): JSYNTH_CPU_CONVOLUTIONS=ynnpack;
* large freed host buffers kept for reuse (glibc ``mallopt``, whole process;
  ``jsynth.hostmemory``): JSYNTH_HOST_MALLOC=0.
"""
from __future__ import annotations

from typing import NamedTuple

from jsynth.cpuconvolutions import convolutions_by_eigen
from jsynth.hostdevices import use_one_host_device_per_core
from jsynth.hostmemory import keep_freed_host_buffers


class CpuSetup(NamedTuple):
    """What ``configure_cpu`` changed."""

    host_devices: int | None      # the CPU device count set, None if left as it was
    eigen_convolutions: bool      # the XLA flag was added to XLA_FLAGS
    kept_freed_buffers: bool      # glibc's mmap/trim thresholds were raised


def configure_cpu(*, host_devices: int | None = None, eigen_convolutions: bool = True,
                  keep_freed_buffers: bool = True) -> CpuSetup:
    """Tunes this process for XLA:CPU (see the module docstring); returns what it changed.

    Args:
      host_devices: CPU devices to create (default: one per core).
      eigen_convolutions: run XLA:CPU convolutions by Eigen (measured faster; README, Benchmarks).
      keep_freed_buffers: raise glibc's mmap and trim thresholds to 1 GiB.

    Must run before the first JAX computation (and after ``jax.distributed.initialize`` is not
    required: neither starts a backend). Called later, the device count and the XLA flag are
    left alone (the result says so).
    """
    return CpuSetup(use_one_host_device_per_core(host_devices),
                    convolutions_by_eigen() if eigen_convolutions else False,
                    keep_freed_host_buffers() if keep_freed_buffers else False)
