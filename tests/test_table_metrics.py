"""Table evaluation (jsynth.evaluate.tables): each metric on hand-made tables whose answer is known,
the clear errors for tables that cannot be compared, and `jsynth eval --samples` on small CSV files."""
import contextlib
import hashlib
import io
import json
import os

import numpy as np
import pandas as pd
import pytest

from jsynth.cli import main
from jsynth.evaluate.tables import TableEvalError, evaluate_table
from jsynth.evaluate.tables import frames, shapes, trends
from jsynth.evaluate.tables.privacy import privacy_metrics

KEYS = ("column_shapes", "column_pair_trends", "tstr_f1", "tstr_accuracy", "trtr_f1", "trtr_accuracy",
        "utility_ratio", "dcr_share", "nndr_median", "mia_auc", "protocol")


def draw(n: int, seed: int, *, missing: bool = False) -> pd.DataFrame:
    """A small table: two correlated numbers, an integer, a category, a binary label that depends on them."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    c = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    frame = pd.DataFrame({
        "x": x,
        "y": 0.8 * x + 0.6 * rng.normal(size=n),
        "k": rng.integers(0, 50, n),
        "c": c,
        "label": np.where(x + (c == "a") + 0.3 * rng.normal(size=n) > 0.7, "yes", "no"),
    })
    if missing:
        frame["y"] = frame["y"].mask(rng.random(n) < 0.1)
        frame["c"] = frame["c"].mask(rng.random(n) < 0.1)
    return frame


# ---- the maths, on cases with a known answer ----------------------------------------------------

def test_column_shapes_known_values():
    grid = np.arange(100.0)
    assert shapes.ks_complement(grid, grid) == 1.0
    assert shapes.ks_complement(grid, grid + 30) == pytest.approx(0.7)
    # Missing values are left out of KS; a column missing everywhere in one table only scores 0.
    assert shapes.ks_complement(np.append(grid, np.nan), grid) == 1.0
    assert shapes.ks_complement(np.full(3, np.nan), grid) == 0.0
    half = pd.Series(["a"] * 50 + ["b"] * 50)
    assert shapes.tv_complement(half, half) == 1.0
    assert shapes.tv_complement(half, pd.Series(["a"] * 80 + ["b"] * 20)) == pytest.approx(0.7)
    assert shapes.tv_complement(half, pd.Series(["c"] * 10)) == pytest.approx(0.0)


def test_missing_values_are_a_category_of_their_own():
    real = pd.DataFrame({"c": ["a"] * 9 + [None]})
    synthetic = pd.DataFrame({"c": ["a"] * 10})
    tables = frames.align(synthetic, real, real)
    assert tables.real["c"].tolist() == ["a"] * 9 + [frames.MISSING]
    assert shapes.tv_complement(tables.real["c"], tables.synthetic["c"]) == pytest.approx(0.9)


def test_categories_read_the_same_from_numbers_and_text():
    # 13, 13.0 and "13.0" (a CSV round trip) are one category; "007" stays as written.
    labels = frames.category_labels(pd.Series([13, 13.0, "13.0", "007", True, None], dtype=object))
    assert labels.tolist() == ["13", "13", "13", "007", "True", frames.MISSING]


def test_pair_trends_known_values():
    x = np.linspace(-1, 1, 101)
    assert trends.correlation_similarity(x, x, x, x) == pytest.approx(1.0)
    assert trends.correlation_similarity(x, x, x, -x) == pytest.approx(0.0)
    assert np.isnan(trends.correlation_similarity(x, np.ones_like(x), x, x))  # constant: undefined
    a, b = ["p", "p", "q", "q"], ["u", "v", "u", "v"]
    assert trends.contingency_similarity(a, b, a, b) == 1.0
    # Real joint: 4 cells of 1/4; synthetic: (p,u) and (q,v) of 1/2 -> TVD 1/2.
    assert trends.contingency_similarity(a, b, ["p", "q"], ["u", "v"]) == pytest.approx(0.5)
    ids = np.arange(100_000).astype(str).astype(object)  # two 100,000-category columns: no 10^10 table
    assert trends.contingency_similarity(ids, ids, ids, ids[::-1]) == pytest.approx(0.0)
    real = draw(300, 0)
    scores = trends.pair_trend_scores(real, real, ("x", "y", "k"))
    assert len(scores) == 10 and all(s == pytest.approx(1.0) for s in scores.values())
    broken = real.assign(y=-real["y"], c=real["c"].sample(frac=1.0, random_state=0).to_numpy())
    worse = trends.pair_trend_scores(real, broken, ("x", "y", "k"))
    assert worse[("x", "y")] == pytest.approx(1.0 - abs(2 * np.corrcoef(real.x, real.y)[0, 1]) / 2)
    assert worse[("x", "c")] < 0.95  # the mixed pair sees the shuffled category


@pytest.mark.slow  # compiles the neighbour kernels (~4 s)
def test_privacy_copies_against_fresh_rows():
    rng = np.random.default_rng(0)
    train, holdout, fresh = (rng.normal(size=(400, 3)).astype(np.float32) for _ in range(3))
    copied, _ = privacy_metrics(train, holdout, train)
    assert copied["dcr_share"] == 1.0 and copied["nndr_median"] == 0.0
    assert copied["mia_auc"] > 0.99 and copied["dcr_train_closer_share"] == 1.0
    new, dcr = privacy_metrics(train, holdout, fresh)
    assert new["dcr_share"] < 0.15  # ~0.05 for rows that copy nothing
    assert 0.4 < new["mia_auc"] < 0.6
    assert new["dcr_train_closer_expected"] == 0.5
    assert 0.4 < new["dcr_train_closer_share"] < 0.6
    assert 0.3 < new["nndr_median"] < 1.0
    assert dcr["threshold"] == new["dcr_holdout_p5"]
    # The holdout itself as "synthetic": rows as far from the training set as fresh data.
    assert privacy_metrics(train, holdout, holdout)[0]["dcr_share"] == pytest.approx(0.05, abs=0.01)


# ---- evaluate_table ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tables():
    return draw(400, 0), draw(300, 1)


@pytest.mark.slow
def test_real_training_rows_as_synthetic(tables):
    real, holdout = tables
    result = evaluate_table(real.sample(frac=1.0, random_state=1), real, holdout, target="label")
    assert set(KEYS) <= set(result)
    assert result["column_shapes"] == pytest.approx(1.0) and result["column_pair_trends"] == pytest.approx(1.0)
    assert result["tstr_f1"] == pytest.approx(result["trtr_f1"], abs=0.05)
    assert 0.9 < result["utility_ratio"] < 1.1 and result["trtr_f1"] > 0.6
    assert result["dcr_share"] == 1.0 and result["mia_auc"] > 0.99
    assert result["protocol"]["columns"] == {"continuous": ["x", "y", "k"], "categorical": ["c", "label"]}
    assert result["utility_positive_class"] == "yes"  # the rarer class


@pytest.mark.slow
def test_fresh_rows_and_a_broken_table(tables):
    real, holdout = tables
    fresh = evaluate_table(draw(400, 2), real, holdout, target="label")
    assert fresh["column_shapes"] > 0.85 and fresh["utility_ratio"] > 0.8
    assert fresh["dcr_share"] < 0.2 and 0.35 < fresh["mia_auc"] < 0.65
    rng = np.random.default_rng(3)
    broken = draw(400, 2).assign(x=lambda f: f["x"] + 2.0, label=lambda f: rng.permutation(f["label"].to_numpy()))
    worse = evaluate_table(broken, real, holdout, target="label", seed=1)
    assert worse["column_shapes_by_column"]["x"] < 0.5 < fresh["column_shapes_by_column"]["x"]
    assert worse["column_shapes"] < fresh["column_shapes"]
    assert worse["column_pair_trends"] < fresh["column_pair_trends"]
    assert worse["tstr_f1"] < fresh["tstr_f1"] - 0.2


def test_missing_values_and_one_class_synthetic():
    real, holdout = draw(200, 0, missing=True), draw(150, 1, missing=True)
    synthetic = draw(200, 2, missing=True).assign(label="no")  # a collapsed generator: one class
    result = evaluate_table(synthetic, real, holdout, target="label", options=None)
    for key in KEYS[:-1]:
        assert np.isfinite(result[key]), key
    assert set(result["missing_rates"]) == {"y", "c"}
    assert any("one class" in w for w in result["warnings"])
    assert result["utility_by_classifier"]["mlp"]["tstr_f1"] == 0.0  # never predicts the positive class
    no_target = evaluate_table(synthetic, real, holdout)
    assert no_target["tstr_f1"] is None and np.isfinite(no_target["column_shapes"])


@pytest.mark.parametrize("change, message", [
    (lambda s, r, h: (s.drop(columns=["c"]), r, h), "lacks the real columns ['c']"),
    (lambda s, r, h: (s.assign(extra=1), r, h), "has columns the real table lacks ['extra']"),
    (lambda s, r, h: (s.iloc[:0], r, h), "synthetic table is empty"),
    (lambda s, r, h: (s, r, h.iloc[:0]), "holdout table is empty"),
    (lambda s, r, h: (s, r.assign(label="no"), h), "1 class(es) in the real table"),
    (lambda s, r, h: (s, r, h.assign(label="yes")), "1 class(es) in the holdout table"),
    (lambda s, r, h: (s.assign(x="oops"), r, h), "column 'x' of the synthetic table holds 'oops'"),
])
def test_tables_that_cannot_be_compared(change, message):
    synthetic, real, holdout = change(draw(20, 0), draw(20, 1), draw(20, 2))
    with pytest.raises(TableEvalError) as error:
        evaluate_table(synthetic, real, holdout, target="label")
    assert message in str(error.value)


def test_unknown_target_and_continuous_target():
    real = draw(200, 0)
    with pytest.raises(TableEvalError, match="target column 'income' is not in the real table"):
        evaluate_table(real, real, real, target="income")
    with pytest.raises(TableEvalError, match="looks continuous"):
        evaluate_table(real, real, real, target="x")


# ---- jsynth eval --samples with tables ---------------------------------------------------------

def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.mark.slow
def test_cli_on_csv_files_and_a_shard_folder(tmp_path):
    draw(200, 0, missing=True).to_csv(tmp_path / "train.csv", index=False)
    draw(150, 1, missing=True).to_csv(tmp_path / "test.csv", index=False)
    synthetic = draw(200, 2, missing=True)
    shards = tmp_path / "samples"
    shards.mkdir()
    entries = []
    for i, part in enumerate((synthetic.iloc[:120], synthetic.iloc[120:])):
        part.to_parquet(shards / f"part-{i:05d}.parquet", index=False)
        digest = hashlib.sha256((shards / f"part-{i:05d}.parquet").read_bytes()).hexdigest()
        entries.append({"file": f"part-{i:05d}.parquet", "num": len(part), "sha256": digest})
    (shards / "manifest.json").write_text(json.dumps({"num": 200, "seed": 0, "checkpoint_step": 5, "shards": entries}))
    base = ["eval", "--data", f"csv:{tmp_path / 'train.csv'}", "--holdout", f"csv:{tmp_path / 'test.csv'}",
            "--set", "target=label"]
    status, out, err = run_cli(base + ["--samples", str(shards), "--json", str(tmp_path / "e.json")])
    assert status == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert set(KEYS) <= set(result) and result["protocol"]["rows"]["given"]["synthetic"] == 200
    assert result["protocol"]["source"]["checkpoint_step"] == 5
    report = tmp_path / "e_report"
    assert sorted(os.listdir(report / "columns")) == ["00_x.png", "01_y.png", "02_k.png", "03_c.png", "04_label.png"]
    assert (report / "pair_trends.png").exists() and "column_shapes" in out
    # One CSV file as --samples, no --holdout: a share of --data is held out, with a warning.
    synthetic.to_csv(tmp_path / "syn.csv", index=False)
    status, out, err = run_cli(["eval", "--samples", str(tmp_path / "syn.csv"), "--data", f"csv:{tmp_path / 'train.csv'}",
                                "--set", "target=label", "--set", "report=false", "--json", str(tmp_path / "f.json")])
    assert status == 0, err
    assert "no --holdout" in out and not (tmp_path / "f_report").exists()
    # A shard changed after it was written is refused.
    pd.concat([synthetic.iloc[:120]] * 2).to_parquet(shards / "part-00000.parquet", index=False)
    status, _, err = run_cli(base + ["--samples", str(shards)])
    assert status == 2 and "does not match the sha256" in err


def test_cli_errors_are_one_line(tmp_path):
    draw(30, 0).to_csv(tmp_path / "train.csv", index=False)
    draw(30, 1).drop(columns=["k"]).to_csv(tmp_path / "syn.csv", index=False)
    data = ["--data", f"csv:{tmp_path / 'train.csv'}", "--holdout", f"csv:{tmp_path / 'train.csv'}"]
    status, _, err = run_cli(["eval", "--samples", str(tmp_path / "syn.csv")] + data)
    assert status == 2 and "lacks the real columns ['k']" in err and len(err.strip().splitlines()) == 1
    status, _, err = run_cli(["eval", "--samples", str(tmp_path / "train.csv"), "--set", "target=income"] + data)
    assert status == 2 and "target column 'income' is not in the real table" in err
    status, _, err = run_cli(["eval", "--samples", str(tmp_path / "nowhere")] + data)
    assert status == 2 and "does not exist" in err


@pytest.mark.slow  # trains a tiny TVAE (~20 s of compiling), samples and evaluates it
def test_a_trained_table_run_is_sampled_and_evaluated(tmp_path):
    from jsynth import configs
    from jsynth.train import loop

    draw(160, 0).to_csv(tmp_path / "train.csv", index=False)
    draw(80, 1).to_csv(tmp_path / "test.csv", index=False)
    workdir = str(tmp_path / "run")
    loop.run(configs.tiny("tvae", data=f"csv:{tmp_path / 'train.csv'}", target="label", batch_size=40,
                          latent_dim=8, steps=2, checkpoint_every=2, max_modes=3), workdir)
    status, out, err = run_cli(["eval", "--workdir", workdir, "--holdout", f"csv:{tmp_path / 'test.csv'}",
                                "--num", "120"])
    assert status == 0, err
    assert "column_shapes" in out and "tstr_f1" in out
    result = json.loads(open(os.path.join(workdir, "eval", "eval.json")).read())
    # The run's data and target were used; the rows are the model's (step 2), not a copy of the table.
    assert result["protocol"]["target"] == "label" and result["protocol"]["rows"]["given"]["synthetic"] == 120
    assert result["protocol"]["source"]["checkpoint_step"] == 2 and result["dcr_share"] < 0.5
    assert sorted(os.listdir(os.path.join(workdir, "eval"))) == ["eval.json", "eval_report"]  # samples removed
