"""jsynth: train GANs and VAEs in JAX and turn them into measured synthetic training data.

Importing jsynth before jax gives one XLA host device per CPU core (see ``jsynth.hostdevices``);
set XLA_FLAGS yourself, or JSYNTH_HOST_DEVICES=0, to choose otherwise.
"""
from jsynth.hostdevices import use_one_host_device_per_core

use_one_host_device_per_core()

__version__ = "0.1.0"
