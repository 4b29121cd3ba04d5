"""The table models (TVAE, CTGAN): outputs per segment, the TVAE loss by hand, training-by-sampling,
1 device == 8, bitwise resume, conditional and deterministic sampling, clear errors."""
from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from helpers import assert_trees_bitwise_equal, assert_trees_close, compilation_cache, host, trees_differ  # noqa: F401

from jsynth import configs, parallel
from jsynth.cli import main as cli_main
from jsynth.data import DataError
from jsynth.families.table_shape import TableShape
from jsynth.models.tabular import apply_activations
from jsynth.shards import SampleOutputError
from jsynth.table_sampling import sample_table_to_disk
from jsynth.tabular_losses import conditional_cross_entropy, tvae_loss
from jsynth.train import loop, table_run
from jsynth.train.steps import make_step

LAYOUT = (("tanh", 0, 1), ("softmax", 1, 2), ("softmax", 3, 3))


@pytest.fixture(scope="module")
def csv_path(tmp_path_factory):
    rng = np.random.default_rng(0)
    n = 200
    frame = pd.DataFrame({"age": rng.integers(18, 80, n), "score": rng.normal(5.0, 2.0, n).round(3),
                          "city": rng.choice(["north", "south", "east"], n, p=[0.6, 0.3, 0.1]),
                          "label": rng.choice(["yes", "no"], n, p=[0.3, 0.7])})
    path = tmp_path_factory.mktemp("table") / "small.csv"
    frame.to_csv(path, index=False)
    return str(path)


def tiny_config(model, csv_path, **overrides):
    base = dict(data=f"csv:{csv_path}", target="label", batch_size=40, latent_dim=8, steps=4,
                checkpoint_every=2, max_modes=3)
    if model == "ctgan":
        base["pac"] = 5
    base.update(overrides)
    return configs.tiny(model, **base)


# ---- outputs and losses -------------------------------------------------------------------------

def test_each_segment_gets_its_activation():
    raw = jnp.asarray([[0.5, 2.0, -1.0, 0.1, 0.2, 3.0], [-3.0, 0.0, 0.0, 1.0, 1.0, 1.0]])
    out = np.asarray(jax.jit(apply_activations, static_argnums=1)(raw, LAYOUT))
    np.testing.assert_allclose(out[:, 0], np.tanh(raw[:, 0]), rtol=1e-6)
    np.testing.assert_allclose(out[:, 1:3], jax.nn.softmax(raw[:, 1:3] / 0.2), rtol=1e-5)
    np.testing.assert_allclose(out[:, 3:].sum(axis=1), 1.0, rtol=1e-6)
    # Gumbel noise shifts the logits before the temperature; hard outputs are one-hot.
    gumbel = jnp.zeros_like(raw).at[:, 3].set(10.0)
    hard = np.asarray(jax.jit(functools.partial(apply_activations, layout=LAYOUT, hard=True))(raw, gumbel=gumbel))
    np.testing.assert_array_equal(hard[:, 3:], [[1, 0, 0], [1, 0, 0]])
    np.testing.assert_array_equal(hard[:, 1:3], [[1, 0], [1, 0]])  # argmax, ties to the first
    assert hard[0, 0] == pytest.approx(np.tanh(0.5))


def test_tvae_loss_terms_by_hand():
    raw = jnp.asarray([[0.3, 1.0, 0.0, 0.0, 2.0, 0.0]])
    x = jnp.asarray([[0.5, 1.0, 0.0, 0.0, 0.0, 1.0]])
    mean, log_var = jnp.asarray([[1.0, 0.0]]), jnp.asarray([[0.0, np.log(4.0)]])
    log_sigma = jnp.asarray([np.log(0.5)])
    loss_fn = jax.jit(functools.partial(tvae_loss, layout=LAYOUT, reconstruction_weight=2.0))
    loss, terms = loss_fn(raw, x, mean, log_var, log_sigma)
    gaussian = (0.5 - np.tanh(0.3)) ** 2 / (2 * 0.25) + np.log(0.5)
    ce_first = -(1.0 - np.log(np.exp(1.0) + 1.0))            # category 0 of logits (1, 0)
    ce_second = -(0.0 - np.log(2.0 + np.exp(2.0)))           # category 2 of logits (0, 2, 0)
    kl = 0.5 * (1.0 + 1.0 - 1.0 - 0.0) + 0.5 * (4.0 + 0.0 - 1.0 - np.log(4.0))  # var + mu^2 - 1 - log var
    assert float(terms["gaussian_nll"]) == pytest.approx(gaussian, rel=1e-5)
    assert float(terms["cross_entropy"]) == pytest.approx(ce_first + ce_second, rel=1e-5)
    assert float(terms["kl"]) == pytest.approx(kl, rel=1e-5)
    assert float(loss) == pytest.approx(2 * (gaussian + ce_first + ce_second) + kl, rel=1e-5)
    # sigma is kept in [0.01, 1]: a larger learned value counts as 1.
    _, clipped = loss_fn(raw, x, mean, log_var, jnp.asarray([3.0]))
    assert float(clipped["gaussian_nll"]) == pytest.approx((0.5 - np.tanh(0.3)) ** 2 / 2, rel=1e-5)


def test_conditional_cross_entropy_reads_the_asked_column():
    raw = jnp.asarray([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0]])
    spans = ((1, 2), (3, 3))
    # Condition index 2 is category 0 of the second span (logits 1, 0, 0).
    value = conditional_cross_entropy(raw, jnp.asarray([2]), spans)
    assert float(value) == pytest.approx(-(1.0 - np.log(np.e + 2.0)), rel=1e-5)
    assert float(conditional_cross_entropy(raw, jnp.asarray([0]), spans)) == pytest.approx(np.log(2.0), rel=1e-5)


def test_training_by_sampling_draws_rows_of_the_asked_category():
    rng = np.random.default_rng(1)
    n = 1000
    rows = np.zeros((n, 6), np.float32)
    first = rng.choice(2, n, p=[0.9, 0.1])
    second = rng.choice(3, n, p=[0.5, 0.5, 0.0])  # category 2 never occurs: never drawn
    rows[np.arange(n), 1 + first] = 1
    rows[np.arange(n), 3 + second] = 1
    sampler = table_run.ConditionSampler(rows, ((1, 2), (3, 3)))
    cond, index = sampler.draw(np.random.default_rng((0, 5)), 4000)
    again, index_again = sampler.draw(np.random.default_rng((0, 5)), 4000)
    np.testing.assert_array_equal(cond, again)  # a function of (seed, step)
    np.testing.assert_array_equal(index, index_again)
    conditioned = np.concatenate([rows[:, 1:3], rows[:, 3:6]], axis=1)
    assert np.all(conditioned[index, cond] == 1.0)  # every row holds its condition
    assert not np.any(cond == 4)
    counts = np.bincount(cond, minlength=5)
    # Log-frequency: the rare category of the first column is drawn far more often than its 10 %.
    share_rare = counts[1] / (counts[0] + counts[1])
    expected = np.log1p(np.sum(first == 1)) / (np.log1p(np.sum(first == 0)) + np.log1p(np.sum(first == 1)))
    assert share_rare == pytest.approx(expected, abs=0.04)
    assert (counts[0] + counts[1]) / len(cond) == pytest.approx(0.5, abs=0.04)  # columns uniformly


# ---- training ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_eight_devices_give_the_parameters_of_one(csv_path):
    # CTGAN: BatchNorm over the global batch, dropout, the packed penalty's second derivatives. SGD,
    # because Adam's first steps turn reduction-order noise in near-zero gradients into lr-sized steps.
    config = configs.resolve(tiny_config("ctgan", csv_path, optimizer="sgd", learning_rate=0.05, b1=0.0))
    data = table_run.load_training_data(config)
    results = []
    for devices in (1, 8):
        setup = loop.prepare(configs.replace(config, num_devices=devices), data)
        state = jax.jit(setup.family.init, out_shardings=parallel.replicated(setup.mesh))(jax.random.key(0))
        batches = table_run.batch_source(setup, None, slice(None))
        step = make_step(setup.family, setup.mesh)
        for i in range(2):
            state, metrics = step(state, parallel.shard_batch(setup.mesh, batches(i)), jax.random.key(i))
        results.append((host(state), {k: float(v) for k, v in metrics.items()}))
    (one, m_one), (eight, m_eight) = results
    assert_trees_close(one, eight, rtol=1e-4, atol=1e-5)
    assert m_one == pytest.approx(m_eight, rel=1e-4, abs=1e-5)


@pytest.fixture(scope="module")
def trained(csv_path, tmp_path_factory):
    """A CTGAN run trained straight to 4 steps, and one stopped at 2 and resumed to 4."""
    base = tmp_path_factory.mktemp("ctgan")
    straight, resumed = str(base / "straight"), str(base / "resumed")
    final = loop.run(tiny_config("ctgan", csv_path), straight)
    first = loop.run(tiny_config("ctgan", csv_path, steps=2), resumed)
    final_resumed = loop.run(tiny_config("ctgan", csv_path), resumed)
    return dict(straight=straight, resumed=resumed, final=host(final), first=host(first),
                final_resumed=host(final_resumed))


@pytest.mark.slow  # the module's trained runs: ~20 s of training on 2 cores
def test_a_stopped_table_run_resumes_bitwise(trained):
    assert int(trained["first"].step) == 2 and int(trained["final"].step) == 4
    assert trees_differ(trained["first"].g_params, trained["final"].g_params)
    assert_trees_bitwise_equal(trained["final_resumed"], trained["final"])
    assert os.path.exists(table_run.transform_path(trained["straight"]))


@pytest.mark.slow
def test_a_tvae_run_resumes_bitwise(csv_path, tmp_path):
    straight = host(loop.run(tiny_config("tvae", csv_path), str(tmp_path / "a")))
    loop.run(tiny_config("tvae", csv_path, steps=2), str(tmp_path / "b"))
    resumed = host(loop.run(tiny_config("tvae", csv_path), str(tmp_path / "b")))
    assert_trees_bitwise_equal(resumed, straight)
    frame = _sample(str(tmp_path / "b"), tmp_path / "out", condition="label=yes")
    assert set(frame["label"]) == {"yes"}
    with pytest.raises(Exception, match="only on its target"):
        _sample(str(tmp_path / "b"), tmp_path / "out2", condition="city=north")


# ---- sampling --------------------------------------------------------------------------------------

def _sample(workdir, out, **kwargs):
    from jsynth.tables import read_table_shards
    options = dict(num=300, batch_size=64, shard_size=128, progress=False)
    options.update(kwargs)
    sample_table_to_disk(workdir, str(out), **options)
    return read_table_shards(str(out))


@pytest.mark.slow  # the module's trained runs: ~20 s of training on 2 cores
def test_conditional_sampling_returns_only_the_asked_value(trained, tmp_path):
    frame = _sample(trained["straight"], tmp_path / "south", condition="city=south")
    assert len(frame) == 300 and set(frame["city"]) == {"south"}
    assert list(frame.columns) == ["age", "score", "city", "label"]
    assert frame["age"].dtype.kind in "iu"  # integers come back as integers
    free = _sample(trained["straight"], tmp_path / "free")
    assert len(set(free["city"])) > 1


@pytest.mark.slow  # the module's trained runs: ~20 s of training on 2 cores
def test_sampling_is_deterministic_and_resumes_to_the_same_files(trained, tmp_path):
    first = _sample(trained["straight"], tmp_path / "a", fmt="csv")
    out = tmp_path / "b"
    _sample(trained["straight"], out, fmt="csv")
    files = sorted(f for f in os.listdir(out) if f.endswith(".csv"))
    whole = {f: (out / f).read_bytes() for f in files}
    assert whole == {f: (tmp_path / "a" / f).read_bytes() for f in files}
    # An interrupted request: the last shard lost; the same command writes it again, byte for byte.
    import json
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"] = manifest["shards"][:-1]
    (out / "manifest.json").write_text(json.dumps(manifest))
    os.remove(out / files[-1])
    again = _sample(trained["straight"], out, fmt="csv")
    assert {f: (out / f).read_bytes() for f in files} == whole
    pd.testing.assert_frame_equal(again, first)
    # Row i depends on (seed, i) only: the first rows of a longer request are the same rows.
    longer = _sample(trained["straight"], tmp_path / "c", fmt="csv", num=400)
    pd.testing.assert_frame_equal(longer.iloc[:300].reset_index(drop=True), first)


@pytest.mark.slow  # the module's trained runs: ~20 s of training on 2 cores
def test_table_errors_are_clear(trained, csv_path, tmp_path):
    with pytest.raises(SampleOutputError, match="no value 'west'"):
        _sample(trained["straight"], tmp_path / "x", condition="city=west")
    with pytest.raises(SampleOutputError, match="cannot condition on 'score'"):
        _sample(trained["straight"], tmp_path / "x", condition="score=1")
    with pytest.raises(SampleOutputError, match="--format png is for images"):
        _sample(trained["straight"], tmp_path / "x", fmt="png")
    with pytest.raises(DataError, match="trains on tables"):
        table_run.load_training_data(configs.tiny("ctgan", data="digits"))
    with pytest.raises(DataError, match="is a table"):
        table_run.load_training_data(configs.tiny("mlpvae", data=f"csv:{csv_path}"))
    assert cli_main(["sample", "--workdir", trained["straight"], "--num", "10", "--out", str(tmp_path / "y"),
                     "--label", "1"]) == 2
    with pytest.raises(configs.ConfigError, match="multiple of pac"):
        loop.prepare(tiny_config("ctgan", csv_path, batch_size=42, num_devices=1))
    with pytest.raises(configs.ConfigError, match="option of the table models"):
        configs.tiny("mlpvae", target="label")
