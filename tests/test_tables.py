"""jsynth.tables: reading tables, column inference, the reversible transform, shards, bad tables."""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os

import numpy as np
import pandas as pd
import pytest

from jsynth.errors import UserError
from jsynth.tables import (TableError, TableTransform, infer_columns, load_table_data, read_table,
                           read_table_shards, write_table_shard)

ADULT = "/work/shared/data/adult"
ADULT_CSV = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "adult_csv.py")


def mixed_frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    """Every kind of column the transform handles, with missing values in some."""
    rng = np.random.default_rng(seed)
    gone = rng.random(n)
    return pd.DataFrame({
        "income": np.concatenate([rng.normal(20, 2, n // 2), rng.normal(60, 5, n - n // 2)]),
        "age": rng.integers(18, 90, n),
        "kids": pd.array(np.where(gone < 0.2, None, rng.integers(0, 5, n)), dtype="Int64"),
        "score": np.where(gone > 0.9, np.nan, rng.exponential(3.0, n)),
        "member": rng.random(n) < 0.3,
        "city": pd.Series(np.where(gone < 0.15, None, rng.choice(["Oslo", "Lima", "Pune"], n)), dtype="str"),
        "size": pd.Categorical(rng.choice(["S", "M", "L"], n)),
        "seen": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 86400 * 30, n), unit="s"),
        "day": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 1000, n), unit="D"),
        "label": rng.choice(["no", "yes"], n, p=[0.7, 0.3]),
    })


@pytest.fixture(scope="module")
def fitted():
    frame = mixed_frame()
    columns = infer_columns(frame, target="label")
    return frame, TableTransform.fit(frame, columns, n_jobs=1)


def test_infer_columns_kinds_and_overrides():
    frame = mixed_frame(100)
    info = {c.name: c for c in infer_columns(frame, discrete_columns=["age"], target="label")}
    assert info["income"].kind == "continuous" and not info["income"].integer
    assert info["age"].kind == "categorical" and info["age"].categories == tuple(sorted(set(frame["age"].tolist())))
    assert info["kids"].kind == "continuous" and info["kids"].integer and info["kids"].has_missing
    assert info["member"].kind == "categorical" and info["member"].categories == (False, True)
    assert info["city"].kind == "categorical" and info["city"].has_missing
    assert info["city"].categories == ("Lima", "Oslo", "Pune")
    assert info["seen"].kind == "continuous" and info["seen"].dtype.startswith("datetime64")
    assert info["day"].dates and not info["seen"].dates
    assert info["label"].categories == ("no", "yes")
    assert infer_columns(frame)[1].kind == "continuous"  # age without the override
    with pytest.raises(TableError, match="'nope'.*columns are income"):
        infer_columns(frame, discrete_columns=["nope"])


def test_round_trip_exact_for_categories_close_for_numbers(fitted):
    frame, transform = fitted
    back = transform.decode(transform.encode(frame, seed=3))
    assert list(back.columns) == list(frame.columns)
    assert back.dtypes.to_dict() == frame.dtypes.to_dict()
    for name in frame.columns:
        original, decoded = frame[name], back[name]
        np.testing.assert_array_equal(original.isna().to_numpy(), decoded.isna().to_numpy(), err_msg=name)
        present = original.notna().to_numpy()
        if name in ("income", "score"):
            np.testing.assert_allclose(decoded[present].to_numpy(float), original[present].to_numpy(float),
                                       rtol=1e-5, atol=1e-5, err_msg=name)
        else:  # categories, integers (rounded) and whole-second datetimes come back exactly
            assert (decoded[present].to_numpy() == original[present].to_numpy()).all(), name


def test_decoded_model_output_keeps_missing_rate_and_range(fitted):
    frame, transform = fitted
    rows = transform.encode(frame)
    # Resampled encoded rows (what a perfect generator emits) plus noise on every logit.
    rng = np.random.default_rng(1)
    picked = rows[rng.integers(0, len(rows), 20_000)]
    noisy = picked + rng.normal(0, 0.01, picked.shape).astype(np.float32)
    back = transform.decode(noisy)
    for name in ("kids", "score", "city"):
        assert abs(back[name].isna().mean() - frame[name].isna().mean()) < 0.02, name
    assert back["age"].between(frame["age"].min(), frame["age"].max()).all()
    assert set(back["city"].dropna()) <= {"Oslo", "Lima", "Pune"}
    assert (back["day"] == back["day"].dt.normalize()).all()  # dates come back as dates


def test_transform_json_round_trip(fitted):
    frame, transform = fitted
    again = TableTransform.from_json(json.loads(json.dumps(transform.to_json())))
    assert again == transform
    rows = transform.encode(frame, seed=5)
    np.testing.assert_array_equal(again.encode(frame, seed=5), rows)
    pd.testing.assert_frame_equal(again.decode(rows), transform.decode(rows))
    with pytest.raises(TableError, match="not a saved TableTransform"):
        TableTransform.from_json({"columns": []})


def test_layout_spans_and_condition(fitted):
    frame, transform = fitted
    position = 0
    for segment in transform.layout:
        assert segment.start == position and segment.width >= 1
        assert segment.activation in ("tanh", "softmax")
        assert segment.width == 1 or segment.activation == "softmax"
        position += segment.width
    assert position == transform.output_dim == transform.encode(frame).shape[1]
    # A continuous column with missing values: value, modes, (present, missing).
    kids = [s for s in transform.layout if s.column == "kids"]
    assert [s.activation for s in kids] == ["tanh", "softmax", "softmax"] and kids[2].width == 2
    spans = transform.discrete_spans
    assert [s.column for s in spans] == ["member", "city", "size", "label"]
    assert spans[1].categories == ("Lima", "Oslo", "Pune", None)
    assert transform.condition("label", "yes") == (3, 1)
    assert transform.condition("member", "True") == (0, 1)
    assert transform.condition("city", None) == (1, 3)
    with pytest.raises(TableError, match="'maybe'.*no, yes"):
        transform.condition("label", "maybe")
    with pytest.raises(TableError, match="continuous column"):
        transform.condition("income", "1")
    rows = transform.encode(frame)
    span = spans[3]
    labels = np.argmax(rows[:, span.start:span.start + span.width], axis=1)
    np.testing.assert_array_equal(labels, (frame["label"] == "yes").to_numpy())


def test_compact_matches_decode_under_jax(fitted):
    import jax
    import jax.numpy as jnp

    frame, transform = fitted
    encoded = transform.encode(frame)
    logits = np.random.default_rng(0).normal(size=encoded.shape).astype(np.float32)
    for rows in (encoded, logits):  # numpy's blocked argmax in decode vs XLA's
        on_device = jax.jit(lambda m: transform.compact(m, xp=jnp))(rows)
        assert on_device.shape == (len(frame), transform.compact_dim)
        pd.testing.assert_frame_equal(transform.decode_compact(np.asarray(on_device)), transform.decode(rows))


def test_unseen_values_when_encoding(fitted):
    frame, transform = fitted
    other = frame.head(5).copy()
    other.loc[0, "label"] = "maybe"
    with pytest.raises(TableError, match="'label'.*'maybe'"):
        transform.encode(other)
    rows = transform.encode(other, unknown="ignore")
    span = transform.discrete_spans[3]
    assert rows[0, span.start:span.start + span.width].sum() == 0
    with pytest.raises(TableError, match="lacks column"):
        transform.encode(frame.drop(columns=["age"]))


def test_encoding_more_than_memory_holds_is_a_clear_error(fitted, monkeypatch):
    from jsynth.tables import transform as transform_module

    frame, transform = fitted
    monkeypatch.setattr(transform_module, "available_memory", lambda: 1000 * transform.output_dim * 4)
    transform.encode(frame.head(500))
    with pytest.raises(TableError, match=r"GiB.*widest categorical columns are city \(4\)"):
        transform.encode(pd.concat([frame] * 4))


def test_high_cardinality_text_is_capped_and_constant_column_kept():
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame({"id": [f"user{k}" for k in rng.integers(0, 100_000, n)],
                          "tag": rng.choice(["a", "b"], n), "one": 7, "x": rng.normal(size=n)})
    frame.loc[:9, "id"] = "frequent"
    columns = {c.name: c for c in infer_columns(frame, max_categories=50)}
    assert len(columns["id"].categories) == 50 and "frequent" in columns["id"].categories
    assert columns["id"].other == "(other)"
    transform = TableTransform.fit(frame, tuple(columns.values()), n_jobs=1)
    back = transform.decode(transform.encode(frame))
    kept = frame["id"].isin(columns["id"].categories).to_numpy()
    assert (back["id"][kept] == frame["id"][kept]).all()
    assert (back["id"][~kept] == "(other)").all() and (~kept).sum() > 2000
    assert (back["one"] == 7).all() and back["one"].dtype == np.int64
    with pytest.raises(TableError, match="'x'.*3000 distinct values.*max_categories"):
        infer_columns(frame, discrete_columns=["x"], max_categories=50)


# name -> (file content, the words the error must contain)
BAD_TABLES = {
    "ragged.csv": (b"a,b\n1,2\n3,4,5\n", "line 3"),
    "short.csv": (b"a,b\n1,2\n3\n", "ragged"),
    "empty.csv": (b"", "is empty"),
    "header.csv": (b"a,b\n", "no rows"),
    "blank.csv": (b"a,b\n1,\n2,\n", "column 'b' is empty"),
    "latin1.csv": (b"a,town\n1,Sa\xefd\n2,Oslo\n", "column 'town'.*not UTF-8"),
    "twice.csv": (b"a,a\n1,2\n", "'a' appear more than once"),
    "table.xlsx": (b"x", "not a table this tool can read"),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_tables_give_clear_errors(tmp_path, name):
    content, words = BAD_TABLES[name]
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(TableError, match=words) as caught:
        load_table_data(str(path))
    assert isinstance(caught.value, UserError)
    if name != "table.xlsx":
        assert str(path) in str(caught.value)


def test_missing_file_and_wrong_format(tmp_path):
    with pytest.raises(TableError, match="no such file"):
        read_table(f"csv:{tmp_path}/nothing.csv")
    (tmp_path / "t.csv").write_text("a\n1\n")
    with pytest.raises(TableError, match="could not be read as Parquet"):
        read_table(f"parquet:{tmp_path}/t.csv")


def test_load_table_data_from_csv_and_parquet(tmp_path):
    frame = mixed_frame(300, seed=2)
    frame.to_parquet(tmp_path / "t.parquet")
    frame.drop(columns=["size"]).to_csv(tmp_path / "t.csv", index=False)
    from_parquet = load_table_data(f"parquet:{tmp_path}/t.parquet", target="label")
    assert from_parquet.rows.shape == (300, from_parquet.transform.output_dim)
    np.testing.assert_array_equal(from_parquet.labels, (frame["label"] == "yes").to_numpy())
    assert from_parquet.class_names == ("no", "yes")
    assert from_parquet.transform.decode(from_parquet.rows).dtypes.to_dict() == frame.dtypes.to_dict()
    from_csv = load_table_data(f"csv:{tmp_path}/t.csv", discrete_columns=["age"])
    kinds = {c.name: (c.kind, c.dtype, c.has_missing) for c in from_csv.columns}
    assert kinds["kids"] == ("continuous", "Int64", True)  # integers with gaps stay integers
    assert kinds["age"][0] == "categorical" and kinds["member"][1] == "bool"
    assert kinds["seen"][1].startswith("datetime64")  # ISO timestamps are parsed
    assert from_csv.labels is None and from_csv.content_digest() == load_table_data(
        f"csv:{tmp_path}/t.csv", transform=from_csv.transform).content_digest()


def test_shards_round_trip_through_manifest(tmp_path, fitted):
    frame, transform = fitted
    decoded = transform.decode(transform.encode(frame))
    shards = []
    for index, (fmt, part) in enumerate((("parquet", decoded[:150]), ("csv", decoded[150:]))):
        name = f"part-{index:05d}.{fmt}"
        digest = write_table_shard(part, str(tmp_path / name), fmt)
        assert digest == hashlib.sha256((tmp_path / name).read_bytes()).hexdigest()
        shards.append({"index": index, "file": name, "num": len(part), "sha256": digest})
    (tmp_path / "manifest.json").write_text(json.dumps({"num": len(decoded), "seed": 0,
                                                        "checkpoint_step": 1, "shards": shards}))
    back = read_table_shards(str(tmp_path))
    assert list(back.columns) == list(frame.columns) and len(back) == len(frame)
    pd.testing.assert_frame_equal(read_table(str(tmp_path / "part-00000.parquet")), decoded[:150])
    assert (back["city"].isna() == decoded["city"].isna()).all()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    (tmp_path / "part-00001.csv").write_text("changed\n1\n")
    with pytest.raises(TableError, match="does not match the sha256"):
        read_table_shards(str(tmp_path))
    shards[0]["file"] = "../elsewhere.parquet"
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": shards}))
    with pytest.raises(TableError, match="not a file name inside"):
        read_table_shards(str(tmp_path))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(os.path.join(ADULT, "adult.data.gz")), reason="UCI Adult not present")
def test_adult_slice_encodes_and_decodes(tmp_path):
    spec = importlib.util.spec_from_file_location("adult_csv", ADULT_CSV)
    adult_csv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adult_csv)
    train, test = adult_csv.convert(ADULT, str(tmp_path))
    assert len(read_table(test)) == 16281 and set(read_table(test)["income"]) == {"<=50K", ">50K"}
    frame = read_table(train).head(3000)
    frame.to_csv(tmp_path / "slice.csv", index=False)
    data = load_table_data(f"csv:{tmp_path}/slice.csv", target="income", fit_rows=2000)
    kinds = [c.kind for c in data.columns]
    assert kinds.count("continuous") == 6 and kinds.count("categorical") == 9
    assert data.columns[1].has_missing  # workclass: '?' became missing
    back = data.transform.decode(data.rows)
    for column in data.columns:
        a, b = frame[column.name], back[column.name]
        assert (a.isna() == b.isna()).all()
        assert (a[a.notna()] == b[a.notna()]).all(), column.name

