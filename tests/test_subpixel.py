"""Sub-pixel transposed convolutions compute flax's ConvTranspose exactly, with its parameters."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jsynth.models import DCGANGenerator
from jsynth.families import with_transformed_kernels
from jsynth.models.subpixel import (LOWERINGS, TRANSFORMED, SubPixelConvTranspose, choose_lowering,
                                    conv_transpose, winograd_kernel)

# (input size, C_in, C_out, kernel, stride, padding): the dcgan28 and dcgan64 layers (narrowed)
LAYERS = [(7, 16, 8, 5, 2, "SAME"),    # dcgan28 k5 s2
          (14, 8, 1, 5, 2, "SAME"),    # dcgan28 last layer (1 channel)
          (7, 16, 8, 5, 1, "SAME"),    # dcgan28 k5 s1
          (4, 16, 8, 4, 2, "SAME"),    # dcgan64 k4 s2
          (8, 8, 3, 4, 2, "SAME"),     # dcgan64 last layer (3 channels)
          (1, 10, 16, 4, 1, "VALID"),  # dcgan64 first layer, from 1x1
          (5, 4, 4, 5, 2, ((1, 2), (3, 0)))]


def _cases():
    """Every layer with every lowering; compiles take 0.5-5 s each, so only the dcgan28 k5 s2
    layer (every lowering but col2im, the slowest to compile) is in the quick set (`-m "not slow"`)."""
    for i, layer in enumerate(LAYERS):
        name = "-".join(map(str, layer[:5])) + "-" + (layer[5] if isinstance(layer[5], str) else f"padding{i}")
        for lowering in sorted(LOWERINGS):
            slow = layer != (7, 16, 8, 5, 2, "SAME") or lowering == "col2im"
            yield pytest.param(lowering, *layer, id=f"{name}-{lowering}",
                               marks=[pytest.mark.slow] if slow else [])


@pytest.mark.parametrize("lowering,size,c_in,c_out,k,s,padding", list(_cases()))
def test_equals_flax_conv_transpose(lowering, size, c_in, c_out, k, s, padding):
    x = jax.random.normal(jax.random.key(0), (3, size, size, c_in))
    flax_layer = nn.ConvTranspose(c_out, (k, k), (s, s), padding=padding, precision="highest")
    variables = flax_layer.init(jax.random.key(1), x)
    expected = flax_layer.apply(variables, x)
    kernel, bias = variables["params"]["kernel"], variables["params"]["bias"]
    got = jax.jit(lambda x, k: conv_transpose(x, k, (s, s), padding, "highest", lowering))(x, kernel) + bias
    assert got.shape == expected.shape
    # Winograd's transforms round differently: ~1e-5 of the output's scale for F(4, 5)
    tol = 5e-5 if lowering == "winograd" else 1e-5
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol * float(np.abs(expected).max()))


def test_module_is_a_drop_in_with_the_same_parameters():
    x = jax.random.normal(jax.random.key(0), (2, 7, 7, 16))
    ours = SubPixelConvTranspose(8, (5, 5), (2, 2), precision="highest")
    theirs = nn.ConvTranspose(8, (5, 5), (2, 2), precision="highest")
    ours_vars, theirs_vars = ours.init(jax.random.key(3), x), theirs.init(jax.random.key(3), x)
    assert jax.tree.structure(ours_vars) == jax.tree.structure(theirs_vars)
    jax.tree.map(np.testing.assert_array_equal, ours_vars, theirs_vars)  # same initialisers
    np.testing.assert_allclose(ours.apply(theirs_vars, x), theirs.apply(theirs_vars, x), rtol=1e-5, atol=1e-5)


def test_lowering_choice():
    assert choose_lowering((1, 1, 1, 100), (4, 4, 100, 512)) == "col2im"       # 1x1 latent
    assert choose_lowering((1, 14, 14, 64), (5, 5, 64, 1)) == "col2im"         # 1 output channel
    assert choose_lowering((1, 7, 7, 256), (5, 5, 256, 128)) == "winograd"     # dcgan28 k5 s1
    assert choose_lowering((1, 8, 8, 256), (4, 4, 256, 128)) == "winograd"     # dcgan64 8x8
    assert choose_lowering((1, 4, 4, 512), (4, 4, 512, 256)) == "col2im"       # k4 covers the 4x4 map
    assert choose_lowering((1, 4, 4, 512), (4, 4, 512, 256), True) == "winograd"  # ... transformed ahead
    assert choose_lowering((1, 1, 1, 100), (4, 4, 100, 512), True) == "col2im"
    assert choose_lowering((1, 16, 16, 128), (4, 4, 128, 64)) == "phase_convs"


@pytest.mark.parametrize("shape", [(28, 28, 1), (64, 64, 3)])
def test_generator_upsample_modes_share_parameter_structure(shape):
    z = jnp.zeros((2, 100))
    sub, dil = (jax.eval_shape(DCGANGenerator(shape, 8, upsample=up).init, jax.random.key(1), z)
                for up in ("subpixel", "dilated"))
    assert DCGANGenerator(shape, 8).upsample == "subpixel"  # the default
    assert jax.tree.structure(sub) == jax.tree.structure(dil)
    assert jax.tree.map(lambda x: x.shape, sub) == jax.tree.map(lambda x: x.shape, dil)
    names = sorted(k for k in sub["params"] if k.startswith("ConvTranspose"))
    assert names == [f"ConvTranspose_{i}" for i in range(len(names))]


@pytest.mark.slow  # a whole 28 px generator in two modes, train and inference (~4 s)
def test_dcgan28_upsample_modes_compute_the_same_function():
    sub, dil = DCGANGenerator((28, 28, 1), 8), DCGANGenerator((28, 28, 1), 8, upsample="dilated")
    z = jax.random.normal(jax.random.key(0), (4, 100))
    variables = dil.init(jax.random.key(1), z)
    for train in (False, True):  # BatchNorm on running statistics, then on batch statistics
        a, b = (jax.jit(lambda v, z: g.apply(v, z, train=train, mutable=["batch_stats"])[0])(variables, z)
                for g in (sub, dil))
        np.testing.assert_allclose(a, b, atol=2e-5)


def test_generator_rejects_unknown_upsample():
    with pytest.raises(ValueError, match="upsample must be one of"):
        DCGANGenerator((28, 28, 1), 8, upsample="nearest").init(jax.random.key(0), jnp.zeros((1, 100)))


# ---- transformed kernels computed ahead (sampling) ---------------------------------------------

@pytest.mark.slow
def test_a_transformed_kernel_computed_ahead_gives_the_same_layer():
    x = jax.random.normal(jax.random.key(0), (3, 8, 8, 16))
    kernel = jax.random.normal(jax.random.key(1), (4, 4, 16, 8))
    inline = conv_transpose(x, kernel, (2, 2), "SAME", lowering="winograd")
    ahead = conv_transpose(x, kernel, (2, 2), "SAME", lowering="winograd",
                           transformed=winograd_kernel(x, kernel, (2, 2), "SAME"))
    np.testing.assert_allclose(ahead, inline, rtol=1e-6, atol=1e-6 * float(np.abs(inline).max()))
    with pytest.raises(ValueError, match="for the winograd lowering"):
        conv_transpose(x, kernel, (2, 2), "SAME", lowering="phase_convs", transformed=jnp.zeros(1))


@pytest.mark.slow
def test_generator_samples_with_its_transformed_kernels():
    generator = DCGANGenerator((28, 28, 1), 8)  # its 7x7 k5 s1 layer is lowered by Winograd
    z = jax.random.normal(jax.random.key(0), (4, 100))
    variables = generator.init(jax.random.key(1), z)
    inference, ready = with_transformed_kernels(generator, variables)
    assert set(ready) == {"params", "batch_stats", TRANSFORMED}
    assert list(ready[TRANSFORMED]) == ["ConvTranspose_0"]  # only the Winograd layer
    expected = generator.apply(variables, z)
    np.testing.assert_allclose(inference.apply(ready, z), expected, rtol=1e-6, atol=1e-6)
    # The stored transform is what the inference generator uses: its kernel is no longer read.
    params = dict(ready["params"], ConvTranspose_0={"kernel": 3.0 * ready["params"]["ConvTranspose_0"]["kernel"]})
    np.testing.assert_allclose(inference.apply(dict(ready, params=params), z), expected, rtol=1e-6, atol=1e-6)
    changed = generator.apply(dict(variables, params=params), z)  # without it, the new kernel counts
    assert np.abs(changed - expected).max() > 0.1 * np.abs(expected).max()
    # The training generator ignores the collection even when it is passed in.
    np.testing.assert_allclose(generator.apply(dict(ready, params=params), z), changed, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="with_transformed_kernels"):
        inference.apply(variables, z)  # an inference generator without its transformed kernels


@pytest.mark.slow
def test_mutable_true_cannot_cut_a_kernels_gradient():
    """The Flax habit ``apply(..., mutable=True)`` merged back into the variables must leave every
    kernel trainable (before the fix the Winograd layer then read a stored transform: zero gradient)."""
    generator = DCGANGenerator((28, 28, 1), 8)
    z = jax.random.normal(jax.random.key(0), (4, 100))
    # Jitted: op by op, the Winograd layers take ~20 s to dispatch on 2 cores; the check is the same.
    variables = jax.jit(generator.init)(jax.random.key(1), z)
    for train in (True,):  # the training path, where merged-back variables are differentiated
        _, mutated = jax.jit(lambda v: generator.apply(v, z, train=train, mutable=True))(variables)
        assert TRANSFORMED not in mutated
        merged = {**variables, **mutated}

        def loss(params):
            out = generator.apply(dict(merged, params=params), z, train=train, mutable=["batch_stats"])[0]
            return jnp.sum(out ** 2)

        grads = jax.jit(jax.grad(loss))(merged["params"])
        for name, leaf in jax.tree_util.tree_leaves_with_path(grads):
            if "kernel" in jax.tree_util.keystr(name):
                assert float(jnp.abs(leaf).max()) > 0, jax.tree_util.keystr(name)
