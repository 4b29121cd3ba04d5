"""Training options that change the maths: the EMA generator (and ``sample --no-ema``), the
optimisers and schedules, the Gaussian VAE likelihood and the convolutional VAE.

Every check is against a value computed here by hand (or against another option run from the same
initial state on the same batch and key), on tiny models and a few steps on 8x8 images.
"""
import contextlib
import io
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import (assert_trees_bitwise_equal, compilation_cache, fixed_batch, host,  # noqa: F401
                     tiny_family, trees_differ)
from jsynth import configs, data as jdata, parallel, sampling
from jsynth import workdir as wd
from jsynth.builders import learning_rate_schedule
from jsynth.checkpoint import Checkpointer
from jsynth.cli import main
from jsynth.shards import load_samples
from jsynth.train import loop
from jsynth.families.gan import ema_decay_at

KEY = jax.random.key(7)


def steps_of(model, num_steps, *, conditional=False, same_key=False, batch=None, **overrides):
    """(initial state, [state after each step], [metrics of each step]) as numpy, one device.

    The jitted per-device update of ``build_family`` (what ``loop.run`` runs), on one fixed batch.
    """
    config, family = tiny_family(model, conditional, **overrides)
    if batch is None:
        batch = fixed_batch(family.data_range, 16, 10 if conditional else 0)
    state = jax.jit(family.init)(jax.random.key(0))
    initial, states, history = host(state), [], []
    update = jax.jit(family.update)
    for i in range(num_steps):
        state, metrics = update(state, batch, KEY if same_key else jax.random.fold_in(KEY, i))
        states.append(host(state))
        history.append({k: float(v) for k, v in metrics.items()})
    return initial, states, history


def leaves(tree):
    return [np.asarray(x, np.float64) for x in jax.tree.leaves(tree)]


def assert_finite(history):
    assert history and all(math.isfinite(v) for h in history for v in h.values()), history


# ---- EMA --------------------------------------------------------------------------------------

def test_ema_decay_warms_up_as_documented():
    for step, decay in ((0, 0.999), (1, 0.999), (5, 0.999), (990, 0.999), (0, 0.05), (3, 0.2)):
        expected = min(decay, (1 + step) / (10 + step))
        assert float(ema_decay_at(jnp.int32(step), decay)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.slow
def test_ema_follows_the_documented_update_after_each_step():
    # ema_decay=0.15: the warm-up (1+t)/(10+t) is below it at step 0 (0.1) and above it after.
    decay, lr = 0.15, 1e-2
    initial, states, history = steps_of("mlpgan", 3, ema_decay=decay, learning_rate=lr)
    assert_finite(history)
    assert_trees_bitwise_equal(initial.ema_params, initial.g_params)  # EMA starts at the init
    previous = initial
    for t, state in enumerate(states):
        d = min(decay, (1 + t) / (10 + t))
        assert d == (0.1 if t == 0 else decay)
        for e0, p1, e1 in zip(leaves(previous.ema_params), leaves(state.g_params), leaves(state.ema_params)):
            np.testing.assert_allclose(e1, d * e0 + (1 - d) * p1, rtol=1e-5, atol=1e-7)
        previous = state
    # After a few steps the average lags the raw weights by far more than the tolerance above.
    gaps = [np.max(np.abs(e - p)) for e, p in zip(leaves(states[-1].ema_params), leaves(states[-1].g_params))]
    assert max(gaps) > 1e-4, gaps
    assert trees_differ(states[-1].ema_params, states[-1].g_params)


@pytest.mark.slow
def test_ema_decay_zero_makes_the_ema_the_raw_generator():
    _, states, history = steps_of("mlpgan", 3, ema_decay=0.0, learning_rate=1e-2)
    assert_finite(history)
    for state in states:
        assert_trees_bitwise_equal(state.ema_params, state.g_params)


# ---- jsynth sample --no-ema ---------------------------------------------------------------------

def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    assert status == 0, err.getvalue()
    return out.getvalue()


@pytest.mark.slow
def test_sample_no_ema_uses_the_raw_generator(tmp_path):
    workdir = str(tmp_path / "gan")
    run_cli(["train", "--model", "mlpgan", "--data", "digits", "--workdir", workdir, "--steps", "4",
             "--batch-size", "16", "--checkpoint-every", "4", "--set", "width=16", "--set", "latent_dim=8",
             "--set", "learning_rate=0.01", "--set", "progress=false", "--set", "sample_every=1000"])
    samples = {}
    for name, flags in (("ema", []), ("raw", ["--no-ema"])):
        out = str(tmp_path / name)
        run_cli(["sample", "--workdir", workdir, "--num", "16", "--out", out, "--batch-size", "16",
                 "--seed", "5"] + flags)
        samples[name] = load_samples(out)[0]
        with open(os.path.join(out, "manifest.json")) as f:
            assert json.load(f)["ema"] == (name == "ema")

    # The same samples decoded here from the checkpoint's EMA and raw generator weights.
    setup = loop.prepare(wd.read_config(workdir))
    checkpoints = Checkpointer(wd.checkpoint_dir(workdir))
    state, _ = checkpoints.restore(checkpoints.latest_step(), loop.abstract_state(setup))
    checkpoints.close()
    assert int(state.step) == 4
    chunk_fn = sampling.make_chunk_fn(setup.family.decode, latent_dim=8, chunk_size=16, mesh=parallel.data_mesh())
    for name, params in (("ema", state.ema_params), ("raw", state.g_params)):
        variables = {"params": params, "batch_stats": state.g_batch_stats}
        (chunk,) = sampling.sample_chunks(chunk_fn, variables, seed=5, start=0, stop=16, chunk_size=16)
        np.testing.assert_allclose(samples[name], chunk.images, rtol=1e-5, atol=1e-6, err_msg=name)
    assert np.max(np.abs(samples["ema"] - samples["raw"])) > 1e-3


# ---- optimisers and schedules -------------------------------------------------------------------

@pytest.mark.slow
def test_adamw_decays_the_weights_on_top_of_adam():
    lr, wd_ = 1e-3, 0.1
    initial, adam, adam_history = steps_of("mlpvae", 4, learning_rate=lr)
    _, adamw, adamw_history = steps_of("mlpvae", 4, optimizer="adamw", weight_decay=wd_, learning_rate=lr)
    assert_finite(adam_history + adamw_history)
    assert trees_differ(adamw[-1].params, initial.params)
    assert trees_differ(adamw[-1].params, adam[-1].params)
    # Same init, batch and key: the first updates differ by exactly AdamW's decoupled -lr * wd * p0.
    for p0, a, w in zip(leaves(initial.params), leaves(adam[0].params), leaves(adamw[0].params)):
        np.testing.assert_allclose(w - a, -lr * wd_ * p0, rtol=1e-3, atol=1e-7)


def test_warmup_cosine_schedule_values():
    config = configs.resolve(configs.tiny("mlpvae", schedule="warmup_cosine", warmup_steps=2, steps=6))
    schedule = learning_rate_schedule(config, 1.0)
    expected = [0.0, 0.5, 1.0] + [0.5 * (1 + math.cos(math.pi * (t - 2) / 4)) for t in (3, 4, 5, 6)]
    np.testing.assert_allclose([float(schedule(t)) for t in range(7)], expected, atol=1e-6)


@pytest.mark.slow
def test_warmup_cosine_starts_at_zero_learning_rate_then_trains():
    initial, warm, history = steps_of("mlpvae", 4, schedule="warmup_cosine", warmup_steps=2)
    _, constant, _ = steps_of("mlpvae", 4)
    assert_finite(history)
    assert_trees_bitwise_equal(warm[0].params, initial.params)  # step 0 of the warm-up: lr = 0
    assert trees_differ(constant[0].params, initial.params)
    assert trees_differ(warm[-1].params, warm[0].params)  # then it trains
    assert trees_differ(warm[-1].params, constant[-1].params)


@pytest.mark.slow
def test_sgd_steps_along_the_gradient_that_adam_normalises():
    sgd_lr, adam_lr = 0.1, 1e-3
    initial, sgd, sgd_history = steps_of("mlpvae", 4, optimizer="sgd", learning_rate=sgd_lr)
    _, adam, _ = steps_of("mlpvae", 1, learning_rate=adam_lr)
    assert_finite(sgd_history)
    assert trees_differ(sgd[-1].params, sgd[0].params)
    # First step (momentum trace = g): SGD moves by -lr * g, Adam by -lr * g / (|g| + 1e-8).
    magnitudes = []
    for p0, s, a in zip(leaves(initial.params), leaves(sgd[0].params), leaves(adam[0].params)):
        g = (p0 - s) / sgd_lr
        big = np.abs(g) > 1e-3  # where g is known well from the float32 difference
        np.testing.assert_allclose((a - p0)[big], -adam_lr * np.sign(g[big]), rtol=2e-3)
        magnitudes.append(np.abs(g[big]))
    magnitudes = np.concatenate(magnitudes)
    # SGD's steps are proportional to the gradient (not, like Adam's, about lr in size).
    assert magnitudes.size > 100 and magnitudes.max() > 10 * magnitudes.min()


# ---- VAE likelihoods and the convolutional VAE -----------------------------------------------

def digits_batch(n=16):
    images = jdata.load("digits").images[:n]
    return {"image": np.asarray(jdata.to_model_range(images, "unit"), np.float32)}


def test_gaussian_likelihood_learns_log_sigma():
    lr = 1e-3
    initial, states, history = steps_of("mlpvae", 3, likelihood="gaussian", learning_rate=lr,
                                        batch=digits_batch())
    assert_finite(history)
    assert float(initial.params["log_sigma"]) == 0.0
    # |x - mean| < 1 for x and sigmoid means in [0, 1], so the NLL falls as sigma does, and Adam's
    # first step is -lr * sign(grad).
    assert float(states[0].params["log_sigma"]) == pytest.approx(-lr, rel=1e-3)
    assert float(states[-1].params["log_sigma"]) < float(states[0].params["log_sigma"])
    # The recon term is the Gaussian NLL: a log-normaliser of 0.5 log(2 pi) + log_sigma per pixel.
    assert history[0]["recon"] > 0 and history[0]["loss"] >= history[0]["recon"]


@pytest.mark.slow
def test_convvae_trains():
    batch = digits_batch()
    initial, states, history = steps_of("convvae", 6, same_key=True, batch=batch, learning_rate=3e-3)
    assert_finite(history)
    losses = [h["loss"] for h in history]
    assert losses[-1] < losses[0], losses  # same batch and key every step: the objective is fixed
    for name, before, after in zip(initial.params, initial.params.values(), states[-1].params.values()):
        if name != "log_sigma":  # unused by the Bernoulli likelihood
            assert trees_differ(before, after), name
