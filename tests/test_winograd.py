"""Winograd lowerings compute the same functions (and gradients) as XLA's convolutions."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jsynth.models import DCGANDiscriminator
from jsynth.models.winograd import WinogradConv, conv, minimal_filter

DN = ("NHWC", "HWIO", "NHWC")


@pytest.mark.parametrize("m,r", [(2, 3), (4, 3), (4, 5), (4, 2), (3, 4), (1, 3), (4, 1)])
def test_minimal_filter_computes_a_correlation(m, r):
    at, g, bt = minimal_filter(m, r)
    rng = np.random.default_rng(m * 10 + r)
    d, k = rng.standard_normal(m + r - 1), rng.standard_normal(r)
    np.testing.assert_allclose(at @ ((g @ k) * (bt @ d)), [d[i:i + r] @ k for i in range(m)], atol=1e-10)


def _close(got, expected, tol=5e-5):
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * float(np.abs(expected).max()))


slow = pytest.mark.slow  # each case compiles a convolution and its gradients (3-5 s)


@pytest.mark.slow
@pytest.mark.parametrize("size,c_in,c_out,k", [pytest.param(14, 16, 8, 5, marks=slow), (28, 1, 4, 5),
                                               pytest.param(16, 8, 8, 4, marks=slow),
                                               pytest.param(8, 3, 5, 4, marks=slow),
                                               pytest.param(9, 2, 3, 5, marks=slow),
                                               pytest.param(7, 4, 4, 3, marks=slow)])
def test_strided_conv_equals_lax_with_gradients(size, c_in, c_out, k):
    x = jax.random.normal(jax.random.key(0), (3, size, size, c_in))
    w = jax.random.normal(jax.random.key(1), (k, k, c_in, c_out)) / k
    ref = lambda x, w: jax.lax.conv_general_dilated(x, w, (2, 2), "SAME", dimension_numbers=DN,
                                                    precision="highest")
    ours = lambda x, w: conv(x, w, (2, 2), "highest")
    _close(jax.jit(ours)(x, w), jax.jit(ref)(x, w))
    loss = lambda f: lambda x, w: jnp.sum(jnp.sin(f(x, w)))
    for got, expected in zip(jax.grad(loss(ours), (0, 1))(x, w), jax.grad(loss(ref), (0, 1))(x, w)):
        _close(got, expected)


@pytest.mark.slow
def test_winograd_conv_is_a_drop_in_for_flax_conv():
    x = jax.random.normal(jax.random.key(0), (2, 14, 14, 8))
    ours = WinogradConv(16, (5, 5), (2, 2), precision="highest")
    theirs = nn.Conv(16, (5, 5), (2, 2), padding="SAME", precision="highest")
    ours_vars, theirs_vars = ours.init(jax.random.key(3), x), theirs.init(jax.random.key(3), x)
    jax.tree.map(np.testing.assert_array_equal, ours_vars, theirs_vars)  # same names, shapes, initialisers
    _close(ours.apply(theirs_vars, x), theirs.apply(theirs_vars, x))


@pytest.mark.slow  # whole 28 px and 64 px discriminators and their gradients (6 s, 11 s)
@pytest.mark.parametrize("size,channels", [(28, 1), (64, 3)])
def test_discriminator_downsample_modes_compute_the_same_function(size, channels):
    x = jax.random.uniform(jax.random.key(0), (2, size, size, channels), minval=-1, maxval=1)
    wino, plain = DCGANDiscriminator(8), DCGANDiscriminator(8, downsample="conv")
    assert wino.downsample == "winograd"  # the default
    # Everything jitted: op by op the Winograd discriminator takes ~10-20 s to dispatch on 2 cores.
    variables = jax.jit(plain.init)(jax.random.key(1), x)
    assert jax.tree.structure(jax.eval_shape(wino.init, jax.random.key(1), x)) == jax.tree.structure(variables)
    a, b = (jax.jit(d.apply)(variables, x) for d in (wino, plain))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    ga, gb = (jax.jit(jax.grad(lambda v, d=d: d.apply(v, x).sum()))(variables) for d in (wino, plain))
    jax.tree.map(lambda p, q: np.testing.assert_allclose(p, q, rtol=1e-3, atol=1e-4), ga, gb)


def test_discriminator_rejects_unknown_downsample():
    with pytest.raises(ValueError, match="downsample must be one of"):
        DCGANDiscriminator(8, downsample="pool").init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
