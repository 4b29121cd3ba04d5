"""Shapes, ranges, conditioning and exact reference sizes of the Flax modules in jsynth.models.

Shapes and parameter counts come from ``jax.eval_shape`` (nothing big is allocated); value checks
run tiny widths on 8x8 images.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import count_params
from jsynth import configs
from jsynth.builders import build_gan, build_vae
from jsynth.models import (VAE, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator, MLPGenerator,
                           decoder_mean, make_conv_vae, make_mlp_vae)

KEY = jax.random.key(0)
SIZES = (8, 16, 28, 32, 64)


def generator_shapes(generator, batch=2, labels=None, train=False):
    """(variables, output) shapes of ``generator`` initialised and applied abstractly."""
    z = jax.ShapeDtypeStruct((batch, generator.latent_dim), jnp.float32)

    def init_and_apply(z):
        variables = generator.init(KEY, z, labels, train=False)
        if train:
            out, _ = generator.apply(variables, z, labels, train=True, mutable=["batch_stats"])
        else:
            out = generator.apply(variables, z, labels, train=False)
        return variables, out

    return jax.eval_shape(init_and_apply, z)


def discriminator_shapes(discriminator, image_shape, batch=2, labels=None):
    x = jax.ShapeDtypeStruct((batch,) + tuple(image_shape), jnp.float32)

    def init_and_apply(x):
        variables = discriminator.init(KEY, x, labels, train=False)
        return variables, discriminator.apply(variables, x, labels, train=False)

    return jax.eval_shape(init_and_apply, x)


# ---- reference architectures (docs/architectures.md) --------------------------------

def test_dcgan28_generator_has_the_reference_size():
    variables, out = generator_shapes(DCGANGenerator((28, 28, 1), width=64))
    assert out.shape == (2, 28, 28, 1)
    assert count_params(variables["params"]) == 2_305_472
    assert count_params(variables["batch_stats"]) == 25_472


def test_dcgan64_generator_has_the_reference_size():
    variables, out = generator_shapes(DCGANGenerator((64, 64, 3), width=64))
    assert out.shape == (2, 64, 64, 3)
    assert count_params(variables["params"]) == 3_576_704
    assert count_params(variables["batch_stats"]) == 1_920


def test_dcgan28_discriminator_has_the_reference_size():
    variables, out = discriminator_shapes(DCGANDiscriminator(width=64, dropout=0.3), (28, 28, 1))
    assert out.shape == (2,)
    assert count_params(variables["params"]) == 212_865


def test_mlpvae_decoder_has_the_reference_size():
    vae = make_mlp_vae((28, 28, 1), hidden=400, latent_dim=20)
    x = jax.ShapeDtypeStruct((1, 28, 28, 1), jnp.float32)
    variables = jax.eval_shape(lambda x: vae.init({"params": KEY, "noise": KEY}, x), x)
    assert count_params(variables["params"]["decoder"]) == 322_784
    logits = jax.eval_shape(lambda v, z: vae.apply(v, z, method=VAE.decode), variables,
                            jax.ShapeDtypeStruct((3, 20), jnp.float32))
    assert logits.shape == (3, 28, 28, 1)


# ---- shapes at every supported size -------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("channels", (1, 3))
@pytest.mark.parametrize("size", SIZES)
def test_dcgan_shapes_at_every_supported_size(size, channels):
    shape = (size, size, channels)
    for train in (False, True):
        variables, out = generator_shapes(DCGANGenerator(shape, width=8, latent_dim=6), train=train)
        assert out.shape == (2,) + shape and out.dtype == jnp.float32
    _, conditional = generator_shapes(DCGANGenerator(shape, width=8, num_classes=3, latent_dim=6),
                                      labels=jnp.zeros((2,), jnp.int32))
    assert conditional.shape == (2,) + shape
    for classes, labels in ((0, None), (3, jnp.array([0, 2]))):
        _, logits = discriminator_shapes(DCGANDiscriminator(width=4, num_classes=classes), shape,
                                         labels=labels)
        assert logits.shape == (2,) and logits.dtype == jnp.float32


@pytest.mark.parametrize("shape", ((8, 8, 1), (28, 28, 1), (32, 32, 3)))
def test_mlp_and_vae_shapes(shape):
    _, out = generator_shapes(MLPGenerator(shape, hidden=16, latent_dim=5), batch=3)
    assert out.shape == (3,) + shape
    _, logits = discriminator_shapes(MLPDiscriminator(hidden=16), shape, batch=3)
    assert logits.shape == (3,)
    for make in (make_mlp_vae, make_conv_vae):
        vae = make(shape, 4, 8, 5)
        x = jax.ShapeDtypeStruct((3,) + shape, jnp.float32)
        labels = jnp.array([0, 1, 3])

        def run(x):
            variables = vae.init({"params": KEY, "noise": KEY}, x, labels)
            return vae.apply(variables, x, labels, rngs={"noise": KEY}), vae.apply(
                variables, jnp.zeros((3, 5)), labels, method=VAE.decode)

        (recon, mean, log_var), decoded = jax.eval_shape(run, x)
        assert recon.shape == (3,) + shape and decoded.shape == (3,) + shape
        assert mean.shape == log_var.shape == (3, 5)


# ---- values: ranges and conditioning ---------------------------------------------------------
# Weights are drawn with numpy into the shapes ``eval_shape`` gives: compiling Flax's initialisers
# for conv kernels (threefry on rank-4 shapes) takes XLA:CPU many seconds, and the values of these
# tests do not depend on how the weights were drawn. Each test jits one function for all its work.

def numpy_variables(init, *args, seed=0):
    """Variables with the shapes ``init(*args)`` gives: N(0, 0.5^2) weights, BatchNorm at identity."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = getattr(path[-1], "key", "")
        if name in ("var", "scale"):
            return jnp.ones(leaf.shape, leaf.dtype)
        if name == "mean":
            return jnp.zeros(leaf.shape, leaf.dtype)
        return jnp.asarray(rng.normal(0.0, 0.5, leaf.shape), leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, jax.eval_shape(init, *args))


@pytest.mark.parametrize("make", (lambda c: MLPGenerator((8, 8, 1), 16, c, latent_dim=6),
                                  lambda c: DCGANGenerator((8, 8, 1), 4, c, latent_dim=6)), ids=("mlp", "dcgan"))
def test_generators_are_in_tanh_range_and_labels_change_the_output(make):
    conditional, unconditional = make(5), make(0)
    z = jax.random.normal(jax.random.key(1), (4, 6))
    labels_a, labels_b = jnp.array([0, 1, 2, 3]), jnp.array([4, 4, 4, 4])
    variables = numpy_variables(lambda: conditional.init(KEY, z, labels_a))
    plain = numpy_variables(lambda: unconditional.init(KEY, z), seed=1)

    @jax.jit
    def run(variables, plain, z):
        return (conditional.apply(variables, z, labels_a), conditional.apply(variables, z, labels_b),
                unconditional.apply(plain, z))

    out_a, out_b, out = map(np.asarray, run(variables, plain, z))
    for images in (out_a, out_b, out):
        assert images.shape == (4, 8, 8, 1)
        assert np.all(np.isfinite(images)) and np.all(np.abs(images) <= 1.0)
    # Each sample differs only in its label, so every image changes.
    assert np.all(np.max(np.abs(out_a - out_b).reshape(4, -1), axis=1) > 1e-6)
    # The output depends on z.
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("kind", ("mlp", "dcgan"))
def test_conditional_discriminators_use_the_labels(kind):
    disc = (MLPDiscriminator(16, num_classes=3) if kind == "mlp" else
            DCGANDiscriminator(4, num_classes=3))
    x = jax.random.uniform(jax.random.key(2), (4, 8, 8, 1), minval=-1.0)
    labels = jnp.array([0, 1, 2, 0])
    variables = numpy_variables(lambda: disc.init(KEY, x, labels))

    @jax.jit
    def run(variables, x):
        return disc.apply(variables, x, labels), disc.apply(variables, x, (labels + 1) % 3)

    a, b = map(np.asarray, run(variables, x))
    assert a.shape == (4,) and np.all(np.isfinite(a))
    assert np.all(a != b)


@pytest.mark.slow
@pytest.mark.parametrize("make", (make_mlp_vae, make_conv_vae), ids=("mlpvae", "convvae"))
def test_vae_decoder_mean_in_unit_range_and_labels_change_it(make):
    vae = make((8, 8, 1), 3, 8, 4)
    x = jax.random.uniform(jax.random.key(3), (2, 8, 8, 1))
    z = jax.random.normal(jax.random.key(4), (2, 4))
    labels = jnp.array([0, 1])
    variables = numpy_variables(lambda: vae.init({"params": KEY, "noise": KEY}, x, labels))

    @jax.jit
    def run(variables, x, z):
        decode = lambda labels: decoder_mean(vae.apply(variables, z, labels, method=VAE.decode))
        recon_a, mean_a, _ = vae.apply(variables, x, labels, rngs={"noise": jax.random.key(5)})
        recon_b, mean_b, _ = vae.apply(variables, x, labels, rngs={"noise": jax.random.key(6)})
        return decode(labels), decode(jnp.array([2, 2])), recon_a, recon_b, mean_a, mean_b

    images, other, recon_a, recon_b, mean_a, mean_b = map(np.asarray, run(variables, x, z))
    assert images.shape == (2, 8, 8, 1)
    assert np.all((images >= 0.0) & (images <= 1.0))
    assert not np.allclose(images, other)
    # The reconstruction depends on the noise key (reparameterisation); the posterior mean does not.
    np.testing.assert_array_equal(mean_a, mean_b)
    assert not np.allclose(recon_a, recon_b)


def test_dcgan_batchnorm_train_mode_updates_running_statistics():
    generator = DCGANGenerator((8, 8, 1), width=4, latent_dim=6)
    z = jax.random.normal(jax.random.key(1), (4, 6))
    variables = numpy_variables(lambda: generator.init(KEY, z))

    @jax.jit
    def run(variables, z):
        return generator.apply(variables, z, train=True, mutable=["batch_stats"])[1]["batch_stats"]

    before, after = variables["batch_stats"], run(variables, z)
    assert jax.tree.structure(before) == jax.tree.structure(after)
    assert len(jax.tree.leaves(before)) == 2  # mean and var of the one BatchNorm at 8x8
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        assert not np.allclose(a, b)


def test_bfloat16_compute_keeps_float32_params():
    config = configs.resolve(configs.tiny("dcgan", compute_dtype="bfloat16"))
    generator, discriminator = build_gan(config, (8, 8, 1), 0)
    variables, out = generator_shapes(generator)
    assert {x.dtype for x in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    assert out.dtype == jnp.bfloat16
    variables, logits = discriminator_shapes(discriminator, (8, 8, 1))
    assert {x.dtype for x in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
    assert logits.dtype == jnp.float32


# ---- errors -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", ((10, 10, 1), (8, 16, 1), (8, 8, 2), (128, 128, 3)))
def test_dcgan_rejects_unsupported_shapes_with_a_helpful_message(shape):
    with pytest.raises(ValueError, match=r"DCGAN supports square images .*\(8, 16, 28, 32, 64\).*mlpgan"):
        generator_shapes(DCGANGenerator(shape, width=4, latent_dim=4))
    with pytest.raises(ValueError, match="mlpgan"):
        build_gan(configs.resolve(configs.tiny("dcgan")), shape, 0)


def test_convvae_rejects_sides_not_divisible_by_four():
    with pytest.raises(ValueError, match="divisible by 4.*mlpvae"):
        make_conv_vae((10, 10, 1))
    with pytest.raises(ValueError, match="divisible by 4"):
        build_vae(configs.resolve(configs.tiny("convvae")), (6, 6, 1), 0)


@pytest.mark.parametrize("module", (MLPGenerator((8, 8, 1), 8, num_classes=3, latent_dim=4),
                                    DCGANGenerator((8, 8, 1), 4, num_classes=3, latent_dim=4)), ids=("mlp", "dcgan"))
def test_conditional_generator_without_labels_says_so(module):
    with pytest.raises(ValueError, match="class-conditional.*pass labels"):
        generator_shapes(module)


@pytest.mark.parametrize("module", (MLPGenerator((8, 8, 1), 8, latent_dim=4),
                                    DCGANGenerator((8, 8, 1), 4, latent_dim=4)), ids=("mlp", "dcgan"))
def test_latents_of_the_wrong_width_say_so(module):
    z = jnp.zeros((2, 5))
    with pytest.raises(ValueError, match=r"latents of shape \(batch, 4\), got \(2, 5\).*latent_dim"):
        module.init(KEY, z)


def test_conditional_discriminator_without_labels_says_so():
    with pytest.raises(ValueError, match="class-conditional.*pass labels"):
        discriminator_shapes(DCGANDiscriminator(4, num_classes=3), (8, 8, 1))
