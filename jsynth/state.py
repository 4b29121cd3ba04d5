"""Training-state pytrees: everything a step reads and writes, and nothing else.

Named fields, never positional tuples. The step key is not stored: it is
``fold_in(seed_key, step)``, so a resumed run needs only ``step``.
"""
from __future__ import annotations

from typing import Any

import flax.struct
import jax.numpy as jnp

PyTree = Any


@flax.struct.dataclass
class GANState:
    step: jnp.ndarray          # int32 scalar: steps taken
    g_params: PyTree
    g_batch_stats: PyTree      # BatchNorm running statistics ({} for nets without BatchNorm)
    g_opt_state: PyTree
    d_params: PyTree
    d_opt_state: PyTree
    ema_params: PyTree         # EMA of g_params: the generator samples come from


@flax.struct.dataclass
class VAEState:
    step: jnp.ndarray
    params: PyTree
    opt_state: PyTree
