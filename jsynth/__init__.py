"""jsynth: train GANs and VAEs in JAX and turn them into measured synthetic training data.

Importing jsynth before jax gives one XLA host device per CPU core (see ``jsynth.hostdevices``);
set XLA_FLAGS yourself, or JSYNTH_HOST_DEVICES=0, to choose otherwise. It also keeps large freed
host buffers for reuse (``jsynth.hostmemory``; JSYNTH_HOST_MALLOC=0 leaves malloc alone), and
on jaxlib 0.10 runs XLA:CPU convolutions by Eigen (``jsynth.cpuconvolutions``;
JSYNTH_CPU_CONVOLUTIONS=ynnpack keeps XLA's default).
"""
from jsynth.cpuconvolutions import convolutions_by_eigen
from jsynth.hostdevices import use_one_host_device_per_core
from jsynth.hostmemory import keep_freed_host_buffers

use_one_host_device_per_core()
convolutions_by_eigen()
keep_freed_host_buffers()

__version__ = "0.1.0"
