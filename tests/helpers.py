"""Shared test helpers: pytree comparisons, trace counters, tiny models, and a compilation cache.

Import what a test module needs (``from helpers import ...``); importing the ``compilation_cache``
fixture into a module makes it autouse there.

Why a persistent compilation cache: every ``jsynth.train.loop.run`` builds its step afresh, so jit's
in-memory cache never hits across runs; a resume test runs the same config three times. The
persistent cache keys on the compiled HLO, so the second and later runs of a config load the
executable instead of compiling it (a tiny DCGAN step: ~10 s of compile on 2 cores). It changes no
result (an executable is deterministic in its HLO) and is switched off again when the module ends.
"""
from __future__ import annotations

import functools
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jsynth import configs
from jsynth.builders import build_family

_CACHE_OPTIONS = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
                  "jax_persistent_cache_min_entry_size_bytes")

# Shapes of the bundled digits: what the tiny test models are built for.
DIGITS_SHAPE = (8, 8, 1)
DIGITS_CLASSES = 10


def _reset_cache():
    from jax.experimental.compilation_cache import compilation_cache
    compilation_cache.reset_cache()


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    """A session-wide persistent XLA cache for this module's tests; yields its directory."""
    path = str(tmp_path_factory.getbasetemp() / "xla-cache")
    previous = {name: getattr(jax.config, name) for name in _CACHE_OPTIONS}
    for name, value in zip(_CACHE_OPTIONS, (path, 0.0, 0)):
        jax.config.update(name, value)
    _reset_cache()
    yield path
    for name, value in previous.items():
        jax.config.update(name, value)
    _reset_cache()


def cache_env(cache_dir: str) -> dict:
    """Environment variables giving a subprocess the same persistent compilation cache."""
    return {"JAX_COMPILATION_CACHE_DIR": cache_dir,
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
            "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


# ---- pytree comparisons -------------------------------------------------------------------

def host(tree):
    """A pytree of numpy arrays (copies in host memory)."""
    return jax.tree.map(lambda x: np.array(x), jax.device_get(tree))


def assert_trees_bitwise_equal(a, b):
    """Same structure, and every leaf has the same dtype, shape and bytes."""
    a_leaves, a_def = jax.tree.flatten(host(a))
    b_leaves, b_def = jax.tree.flatten(host(b))
    assert a_def == b_def
    for i, (x, y) in enumerate(zip(a_leaves, b_leaves)):
        assert x.dtype == y.dtype and x.shape == y.shape, (i, x.dtype, y.dtype, x.shape, y.shape)
        assert x.tobytes() == y.tobytes(), f"leaf {i} differs: max |diff| {np.max(np.abs(x - y))}"


def assert_trees_close(a, b, rtol=1e-5, atol=1e-6):
    a_leaves, a_def = jax.tree.flatten(host(a))
    b_leaves, b_def = jax.tree.flatten(host(b))
    assert a_def == b_def
    for i, (x, y) in enumerate(zip(a_leaves, b_leaves)):
        assert x.shape == y.shape, (i, x.shape, y.shape)
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"leaf {i}")


def trees_differ(a, b) -> bool:
    return any(not np.array_equal(x, y) for x, y in
               zip(jax.tree.leaves(host(a)), jax.tree.leaves(host(b))))


def count_params(tree) -> int:
    return int(sum(np.prod(x.shape, dtype=np.int64) for x in jax.tree.leaves(tree)))


def corrupt_checkpoint(directory, step):
    """Truncates every data file of the state saved at ``step`` to half its length."""
    pattern = os.path.join(str(directory), str(step), "state", "**", "d", "*")
    files = [f for f in glob.glob(pattern, recursive=True) if os.path.isfile(f)]
    assert files, os.listdir(os.path.join(str(directory), str(step)))
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: len(data) // 2])


# ---- trace counting -----------------------------------------------------------------------

class TraceCounter:
    """Wraps a function; ``count`` is how many times JAX traced it (Python ran its body)."""

    def __init__(self, fn):
        self.fn, self.count = fn, 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        self.count += 1
        return self.fn(*args, **kwargs)


# ---- tiny models and batches -----------------------------------------------------------------

def tiny_family(model: str, conditional: bool = False, **overrides):
    """(resolved tiny config, model family) for 8x8 grey images (the digits' shape)."""
    config = configs.resolve(configs.tiny(model, conditional=conditional, **overrides))
    classes = DIGITS_CLASSES if conditional else 0
    return config, build_family(config, DIGITS_SHAPE, classes)


def fixed_batch(model_range: str, batch_size: int = 16, num_classes: int = 0, seed: int = 0):
    """A deterministic batch of random images in the model's range (and labels 0..K-1 cycled)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 1.0, (batch_size,) + DIGITS_SHAPE).astype(np.float32)
    if model_range == "tanh":
        images = images * 2.0 - 1.0
    batch = {"image": images}
    if num_classes:
        batch["label"] = (np.arange(batch_size) % num_classes).astype(np.int32)
    return batch


def init_host_state(family, seed: int = 0):
    """A fresh state as numpy arrays (so that each test can place and donate its own copy)."""
    return host(jax.jit(family.init)(jax.random.key(seed)))


def place(tree, mesh):
    """A device copy of a host pytree, replicated on ``mesh``."""
    from jsynth import parallel
    return parallel.replicate(mesh, jax.tree.map(jnp.asarray, tree))
