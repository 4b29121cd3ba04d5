"""The evaluation suite end to end, with known answers (bundled digits only: fast on 2 cores).

* Real data evaluated as if it were synthetic: TSTR ~ TRTR, no privacy alarm.
* A "generator" that copies training rows: flagged by DCR share and membership inference.
* A trained run: `jsynth eval --workdir` writes every contracted key and the report, and the FD
  logged during training (fd_every) is the evaluation's FD of the same checkpoint.
"""
import dataclasses
import gzip
import json
import os
import re
import shlex

import jax
import numpy as np
import pytest
from PIL import Image

from jsynth import configs, data as jdata
from jsynth.cli import build_parser, main
from jsynth.evaluate import (EvalOptions, dcr_share, evaluate, evaluate_samples, feature_network,
                             frechet_distance_infinity, nndr, real_splits, splits)
from jsynth.evaluate import inloop, options as options_module, suite
from jsynth.train import loop

CONTRACT_KEYS = {"fd", "precision", "recall", "density", "coverage", "tstr_accuracy", "trtr_accuracy",
                 "utility_ratio", "dcr_share", "mia_auc", "protocol"}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.getbasetemp() / "jsynth-cache")  # shared with test_feature_net


@pytest.fixture(scope="module")
def options(cache):
    # Short classifier budgets: the known answers below hold with room to spare.
    return EvalOptions(utility_steps=150, augment_fractions=(0.1,), cache_dir=cache)


@pytest.fixture(scope="module")
def three_way(tmp_path_factory):
    """The 1,797 digits split three ways into npz files: train A, holdout B, and C (fresh "samples")."""
    digits = jdata.load_digits()
    order = np.random.default_rng(0).permutation(len(digits))
    folder = tmp_path_factory.mktemp("three_way")
    paths = {}
    for name, rows in zip("ABC", np.array_split(order, 3)):
        paths[name] = str(folder / f"{name}.npz")
        np.savez(paths[name], x=digits.images[rows], y=digits.labels[rows])
    return paths


@pytest.mark.slow
def test_real_data_as_synthetic_gives_tstr_close_to_trtr(three_way, options, tmp_path):
    real = real_splits(f"npz:{three_way['A']}", holdout_spec=f"npz:{three_way['B']}")
    result = evaluate_samples(three_way["C"], f"npz:{three_way['A']}", holdout_spec=f"npz:{three_way['B']}",
                              generator_data=real.train.name, options=options, progress=False,
                              json_path=str(tmp_path / "real.json"))
    assert CONTRACT_KEYS <= set(result)
    # 599 test images: one standard error of an accuracy near 0.93 is ~0.01.
    assert abs(result["tstr_accuracy"] - result["trtr_accuracy"]) <= 0.04
    assert 0.95 <= result["utility_ratio"] <= 1.05
    assert result["precision"] > 0.6 and result["recall"] > 0.6 and 0.6 < result["density"] < 1.6
    assert result["label_agreement"] > 0.9
    # Fresh real data is no closer to the training records than the holdout is.
    assert result["dcr_share"] < 0.15 and abs(result["mia_auc"] - 0.5) < 0.08
    assert result["warnings"] == []
    assert result["protocol"]["real"]["method"] == "given holdout"
    assert json.load(open(tmp_path / "real.json"))["fd"] == pytest.approx(result["fd"])


@pytest.mark.slow
def test_a_generator_that_copies_training_rows_is_flagged(three_way, options, tmp_path):
    train = np.load(three_way["A"])
    rng = np.random.default_rng(1)
    order = rng.permutation(len(train["y"]))  # every training row, shuffled, with its own label
    copies = np.clip(train["x"][order] + rng.normal(0, 1e-3, train["x"].shape), 0, 1).astype(np.float32)
    np.savez(tmp_path / "copies.npz", x=copies, y=train["y"][order])
    result = evaluate_samples(str(tmp_path / "copies.npz"), f"npz:{three_way['A']}",
                              holdout_spec=f"npz:{three_way['B']}", options=options, progress=False,
                              json_path=str(tmp_path / "copies.json"))
    assert result["dcr_share"] > 0.95
    assert result["mia_auc"] > 0.95
    assert result["nndr_median"] < 0.1
    assert result["dcr_synthetic_median"] < 0.1 * result["dcr_holdout_median"]
    # Unknown generator data: the protocol says what it assumed.
    assert any("not known" in w for w in result["warnings"])
    report = tmp_path / "copies_report"
    assert {"samples.png", "neighbours.png", "dcr.png", "utility.png", "metrics.md"} <= set(os.listdir(report))
    assert "membership-inference AUC" in (report / "metrics.md").read_text()


@pytest.mark.slow
def test_unlabelled_samples_skip_utility_and_say_so(options):
    real = real_splits("digits")
    result = evaluate(real.heldout.images[:200], None, real, options=options, generator_data="digits",
                      progress=False)
    assert result["tstr_accuracy"] is None and result["augmentation"] == []
    assert any("labelled synthetic" in w for w in result["warnings"])
    assert any("includes the held-out part" in w for w in result["warnings"])
    assert result["fd"] >= 0 and result["report"] is None


@pytest.fixture(scope="module")
def digits():
    return real_splits("digits")  # the split (and cached feature net) of the test above


def _net(real, options):
    return feature_network(real.train, real.heldout, recipe=options.feature_recipe, seed=options.seed,
                           cache_dir=options.cache_dir, progress=False)


@pytest.mark.slow
def test_privacy_in_feature_space_is_measured_on_the_feature_net(digits, options):
    rng = np.random.default_rng(2)
    train = digits.train.images
    noisy = np.clip(train[:300] + rng.normal(0, 0.05, train[:300].shape), 0, 1).astype(np.float32)
    run = lambda **kw: evaluate(noisy, None, digits, options=dataclasses.replace(options, **kw),  # noqa: E731
                                generator_data="digits", progress=False)
    in_features, in_pixels = run(privacy_space="features"), run(privacy_space="pixels")
    assert in_features["protocol"]["privacy"]["space"] == "features"
    assert in_pixels["protocol"]["privacy"]["space"] == "pixels"
    assert in_features["fd"] == in_pixels["fd"]  # only the privacy metrics move
    # Every synthetic and holdout row is used (privacy_rows is larger), so the public metric
    # functions on the same embeddings give the suite's numbers.
    net = _net(digits, options)
    assert in_features["protocol"]["feature_net"]["sha256"] == net.key
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    embeddings = {"features": (net.features(train), net.features(digits.heldout.images), net.features(noisy)),
                  "pixels": (flat(train), flat(digits.heldout.images), flat(noisy))}
    for result, space in ((in_features, "features"), (in_pixels, "pixels")):
        train_x, holdout_x, syn_x = embeddings[space]
        expected = {**dcr_share(train_x, holdout_x, syn_x), **nndr(train_x, syn_x)}
        for name in ("dcr_synthetic_median", "dcr_holdout_median", "dcr_holdout_p5", "nndr_median"):
            assert result[name] == pytest.approx(expected[name], rel=1e-5), (space, name)
        assert result["dcr_share"] == pytest.approx(expected["dcr_share"], abs=1 / 300)
        assert 0.0 <= result["mia_auc"] <= 1.0
    for name in ("dcr_synthetic_median", "dcr_holdout_median"):
        assert in_features[name] != pytest.approx(in_pixels[name], rel=0.05), name


@pytest.mark.slow
def test_fd_infinity_is_computed_and_below_fd_for_real_data(digits, options):
    images = digits.train.images[:600]  # real digits as "samples": FD is finite-sample bias only
    result = evaluate(images, None, digits, options=dataclasses.replace(options, fd_infinity=True),
                      generator_data="digits", progress=False)
    assert result["protocol"]["fd"]["infinity"] is True
    net = _net(digits, options)
    expected = frechet_distance_infinity(net.features(digits.heldout.images), net.features(images),
                                         seed=options.seed)
    assert type(result["fd_infinity"]) is float and np.isfinite(result["fd_infinity"])
    assert result["fd_infinity"] == pytest.approx(expected, rel=1e-9)
    # FD(N) ~ FD_inf + c / N with c > 0: extrapolating to N -> inf removes the synthetic side's bias.
    assert result["fd_infinity"] < result["fd"]
    assert evaluate(images, None, digits, options=options, generator_data="digits",
                    progress=False)["fd_infinity"] is None  # off by default


def _write_idx(path, array):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_splits_mnist_train_test_and_fixed_split(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 20)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    both = real_splits(f"mnist:{tmp_path}")
    assert both.method == "mnist train/test" and (len(both.train), len(both.heldout)) == (30, 20)
    assert splits.generator_warnings(both, both.train.name) == []
    one = real_splits(f"mnist:{tmp_path}:test", seed=3)
    assert one.method == "fixed split" and (len(one.train), len(one.heldout)) == (16, 4)
    again = real_splits(f"mnist:{tmp_path}:test", seed=3)
    np.testing.assert_array_equal(one.heldout.images, again.heldout.images)  # deterministic
    seen = np.concatenate([one.train.images, one.heldout.images]).reshape(20, -1)
    assert len(np.unique(seen, axis=0)) == 20  # disjoint, and together the whole set
    assert "includes the held-out part" in splits.generator_warnings(one, one.source)[0]


def test_eval_options_from_the_command_line():
    options = options_module.with_overrides(EvalOptions(), ["utility_steps=20", "augment_fractions=0.05,0.5",
                                                   "fd_infinity=true", "privacy_space=features"])
    assert (options.utility_steps, options.augment_fractions, options.fd_infinity, options.privacy_space) == (
        20, (0.05, 0.5), True, "features")
    with pytest.raises(ValueError, match="unknown --set key .feature_recipe.; valid keys"):
        options_module.with_overrides(EvalOptions(), ["feature_recipe=1"])
    with pytest.raises(ValueError):
        EvalOptions(privacy_space="latent")


@pytest.mark.slow
def test_fd_in_the_loop_and_jsynth_eval_of_a_run(tmp_path, cache, monkeypatch):
    monkeypatch.setenv("JSYNTH_CACHE", cache)
    monkeypatch.setattr(inloop, "DEFAULT_NUM", 2000)  # fewer samples than the 10,000 of real runs
    workdir = str(tmp_path / "run")
    with_fd = loop.run(configs.tiny("mlpgan", conditional=True, fd_every=3), workdir)
    # Measuring FD changes nothing in training: the same run without it ends bitwise equal.
    plain = loop.run(configs.tiny("mlpgan", conditional=True), str(tmp_path / "plain"))
    assert all(jax.tree.leaves(jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), plain, with_fd)))
    logged = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    fds = {r["step"]: r["fd"] for r in logged if "fd" in r}
    assert sorted(fds) == [3, 6] and all(np.isfinite(list(fds.values())))
    best = sorted(os.listdir(os.path.join(workdir, "best")))
    assert best == [str(min(fds, key=fds.get))]  # max_to_keep=1: only the lowest FD's step

    json_path = str(tmp_path / "eval.json")
    assert main(["eval", "--workdir", workdir, "--json", json_path, "--num", "2000", "--set", "utility_steps=30",
                 "--set", "augment_fractions="]) == 0
    result = json.load(open(json_path))
    assert CONTRACT_KEYS <= set(result)
    protocol = result["protocol"]
    assert protocol["samples"]["num"] == 2000 and protocol["samples"]["checkpoint_step"] == 6
    assert protocol["feature_net"]["hash"] and protocol["feature_net"]["test_accuracy"] > 0.9
    assert protocol["prdc"]["k_precision_recall"] == 3 and protocol["prdc"]["k_density_coverage"] == 5
    # Same checkpoint, samples, feature net and reference: the logged FD is the evaluation's.
    assert result["fd"] == pytest.approx(fds[6], rel=1e-4)
    report = tmp_path / "eval_report"
    assert {"samples.png", "neighbours.png", "dcr.png", "utility.png", "fd.png", "metrics.md"} <= set(
        os.listdir(report))


def test_readme_evaluation_commands_parse():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    section = readme.split("## Evaluation", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^\| `jsynth ((?:train|eval) [^`]+)`", section, re.M)  # the results table
    assert len(commands) >= 4
    for command in commands:
        args = build_parser().parse_args(shlex.split(command))
        assert args.command in ("train", "eval")
