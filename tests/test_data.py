"""Tests for jsynth.data: loaders, validation messages and deterministic batching.

Synthetic files are written to tmp_path; the real MNIST test set is used when
/work/shared/data/mnist is present.
"""
import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from jsynth import data
from jsynth.data import DataError, Dataset

MNIST_DIR = Path("/work/shared/data/mnist")
MNIST_TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

_IDX_TYPES = {np.dtype("u1"): 0x08, np.dtype("i1"): 0x09, np.dtype(">i2"): 0x0B,
              np.dtype(">i4"): 0x0C, np.dtype(">f4"): 0x0D, np.dtype(">f8"): 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise an array in IDX format (big-endian header and elements)."""
    dtype = array.dtype.newbyteorder(">") if array.dtype.itemsize > 1 else array.dtype
    header = bytes([0, 0, _IDX_TYPES[dtype], array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(dtype).tobytes()


def write_idx(path: Path, array: np.ndarray, compress: bool) -> Path:
    raw = idx_bytes(array)
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def write_mnist(directory: Path, prefix: str, n: int, n_labels: int | None = None,
                compress: bool = True, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=(n if n_labels is None else n_labels,), dtype=np.uint8)
    suffix = ".gz" if compress else ""
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
    write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
    return images, labels


def write_png(path: Path, size: tuple[int, int], mode: str = "L", value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode in ("L", "1") else (value, 0, 255 - value)
    Image.new(mode, size, colour).save(path)
    return path


# --- Dataset -----------------------------------------------------------------

def test_dataset_validates_dtype_shape_and_labels():
    images = np.zeros((4, 2, 2, 1), np.float32)
    ok = Dataset(images, np.array([0, 1, 2, 1], np.int32), 3, "t")
    assert len(ok) == 4 and ok.image_shape == (2, 2, 1)
    with pytest.raises(DataError, match="float32"):
        Dataset(images.astype(np.float64), None, 0, "t")
    with pytest.raises(DataError, match="4-D"):
        Dataset(images[..., 0], None, 0, "t")
    with pytest.raises(DataError, match=r"shape \(4,\)"):
        Dataset(images, np.zeros(3, np.int32), 1, "t")
    with pytest.raises(DataError, match=r"\[0, 2\)"):
        Dataset(images, np.array([0, 1, 2, 1], np.int32), 2, "t")
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        Dataset(images + 2.0, None, 0, "t")


# --- digits ------------------------------------------------------------------

def test_digits_shape_range_and_labels():
    ds = data.load_digits()
    assert ds.images.shape == (1797, 8, 8, 1) and ds.images.dtype == np.float32
    assert ds.images.min() == 0.0 and ds.images.max() == 1.0
    assert ds.num_classes == 10 and ds.class_names == tuple("0123456789")
    assert np.bincount(ds.labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert data.load("digits").images.shape == ds.images.shape


# --- IDX ---------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
def test_idx_round_trip(tmp_path, compress, dtype):
    array = (np.arange(2 * 3 * 5).reshape(2, 3, 5) - 7).astype(dtype)
    if dtype == "u1":
        array = np.arange(30, dtype=np.uint8).reshape(2, 3, 5)
    # A gzipped file without .gz extension proves detection is by magic bytes.
    path = write_idx(tmp_path / "file-ubyte", array, compress)
    out = data.read_idx(path)
    assert out.shape == (2, 3, 5)
    assert out.dtype.isnative and out.dtype.kind == np.dtype(dtype).kind
    np.testing.assert_array_equal(out, array)


def test_idx_truncated_names_file_and_sizes(tmp_path):
    raw = idx_bytes(np.zeros((4, 28, 28), np.uint8))
    path = tmp_path / "cut-images-idx3-ubyte"
    path.write_bytes(raw[:-10])
    with pytest.raises(DataError, match="truncated") as err:
        data.read_idx(path)
    message = str(err.value)
    assert "cut-images-idx3-ubyte" in message
    assert str(16 + 4 * 784) in message and str(16 + 4 * 784 - 10) in message


def test_idx_too_long_and_short_header(tmp_path):
    raw = idx_bytes(np.zeros((3,), np.uint8))
    (tmp_path / "long").write_bytes(raw + b"\0")
    with pytest.raises(DataError, match="longer than its header"):
        data.read_idx(tmp_path / "long")
    (tmp_path / "short").write_bytes(bytes([0, 0, 8, 3, 0, 0]))
    with pytest.raises(DataError, match="header needs 16 bytes"):
        data.read_idx(tmp_path / "short")


def test_idx_bad_magic_and_unknown_type(tmp_path):
    (tmp_path / "png.bin").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(DataError, match="not an IDX file") as err:
        data.read_idx(tmp_path / "png.bin")
    assert "png.bin" in str(err.value)
    (tmp_path / "type").write_bytes(bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5]))
    with pytest.raises(DataError, match="element type 0x07"):
        data.read_idx(tmp_path / "type")


def test_idx_corrupt_and_truncated_gzip(tmp_path):
    good = gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8)))
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(DataError, match="corrupt or truncated") as err:
        data.read_idx(tmp_path / "cut.gz")
    assert "cut.gz" in str(err.value)
    corrupt = bytearray(good)
    corrupt[12:20] = b"\xff" * 8
    (tmp_path / "bad.gz").write_bytes(bytes(corrupt))
    with pytest.raises(DataError, match="bad.gz"):
        data.read_idx(tmp_path / "bad.gz")


def test_idx_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.read_idx(tmp_path / "nope")


# --- MNIST -------------------------------------------------------------------

@pytest.mark.parametrize("compress", [True, False])
def test_mnist_loads_synthetic_split(tmp_path, compress):
    images, labels = write_mnist(tmp_path, "t10k", 6, compress=compress)
    ds = data.load_mnist(tmp_path)  # no train files -> test split
    assert ds.images.shape == (6, 28, 28, 1) and ds.images.dtype == np.float32
    np.testing.assert_allclose(ds.images[..., 0], images / 255.0, atol=1e-7)
    np.testing.assert_array_equal(ds.labels, labels)
    assert ds.num_classes == 10 and ds.name == f"mnist:{tmp_path} (test)"


def test_mnist_default_prefers_train_and_spec_selects_split(tmp_path):
    write_mnist(tmp_path, "train", 5, seed=1)
    write_mnist(tmp_path, "t10k", 3, seed=2)
    assert len(data.load_mnist(tmp_path)) == 5
    assert len(data.load(f"mnist:{tmp_path}")) == 5
    assert len(data.load(f"mnist:{tmp_path}:test")) == 3
    assert data.load(f"mnist:{tmp_path}:train").name.endswith("(train)")


def test_mnist_label_count_mismatch(tmp_path):
    write_mnist(tmp_path, "t10k", 5, n_labels=4)
    with pytest.raises(DataError, match="5 images but .* 4 labels"):
        data.load_mnist(tmp_path, "test")


def test_mnist_missing_files_lists_wanted_and_found(tmp_path):
    (tmp_path / "readme.txt").write_text("hi")
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(3, np.uint8), True)
    with pytest.raises(DataError) as err:
        data.load_mnist(tmp_path, "test")
    message = str(err.value)
    assert "t10k-images*-idx3-ubyte[.gz]" in message
    assert "readme.txt" in message and "t10k-labels-idx1-ubyte.gz" in message
    with pytest.raises(DataError, match="does not exist"):
        data.load_mnist(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"lacks train-images\*.*t10k-images\*.*contains: nothing"):
        data.load_mnist(tmp_path / "empty")
    with pytest.raises(DataError, match="valid splits"):
        data.load_mnist(tmp_path, "validation")


def test_mnist_rejects_non_uint8_images(tmp_path):
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 4, 4), ">f4"), False)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.zeros(2, np.uint8), False)
    with pytest.raises(DataError, match="3-D uint8"):
        data.load_mnist(tmp_path)


@pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists(),
                    reason="real MNIST test files not present in /work/shared/data/mnist")
def test_real_mnist_test_set():
    ds = data.load(f"mnist:{MNIST_DIR}:test")
    assert ds.images.shape == (10000, 28, 28, 1)
    assert np.bincount(ds.labels, minlength=10).tolist() == MNIST_TEST_LABEL_COUNTS
    assert abs(float(ds.images.mean()) - 33.79 / 255) < 0.01
    assert ds.images.max() == 1.0 and ds.images.min() == 0.0


# --- npz ---------------------------------------------------------------------

def test_npz_uint8_grey_with_labels(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (5, 6, 7), dtype=np.uint8)
    y = np.array([0, 2, 1, 2, 0])
    np.savez(tmp_path / "d.npz", x=x, y=y)
    ds = data.load(f"npz:{tmp_path / 'd.npz'}")
    assert ds.images.shape == (5, 6, 7, 1)
    np.testing.assert_allclose(ds.images[..., 0], x / 255.0, atol=1e-7)
    assert ds.labels.dtype == np.int32 and ds.labels.tolist() == y.tolist()
    assert ds.num_classes == 3 and ds.class_names == ("0", "1", "2")


def test_npz_float_ranges(tmp_path):
    unit = np.linspace(0, 1, 4 * 3 * 3 * 3, dtype=np.float64).reshape(4, 3, 3, 3)
    np.savez(tmp_path / "unit.npz", x=unit)
    ds = data.load_npz(tmp_path / "unit.npz")
    assert ds.labels is None and ds.num_classes == 0 and ds.image_shape == (3, 3, 3)
    np.testing.assert_allclose(ds.images, unit, atol=1e-7)

    np.savez(tmp_path / "tanh.npz", x=unit * 2 - 1)
    np.testing.assert_allclose(data.load_npz(tmp_path / "tanh.npz").images, unit, atol=1e-6)

    np.savez(tmp_path / "big.npz", x=unit * 255)
    with pytest.raises(DataError, match=r"range \[0.0, 255.0\]"):
        data.load_npz(tmp_path / "big.npz")
    bad = unit.copy()
    bad[0, 0, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x=bad)
    with pytest.raises(DataError, match="NaN"):
        data.load_npz(tmp_path / "nan.npz")


def test_npz_refuses_pickle_and_bad_files(tmp_path):
    objects = np.empty(2, dtype=object)
    objects[:] = [np.zeros((2, 2)), np.zeros((3, 3))]
    np.savez(tmp_path / "obj.npz", x=objects)
    with pytest.raises(DataError, match="pickle") as err:
        data.load_npz(tmp_path / "obj.npz")
    assert "obj.npz" in str(err.value)
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        data.load_npz(tmp_path / "junk.npz")
    np.save(tmp_path / "single.npy", np.zeros((2, 3, 3)))
    with pytest.raises(DataError, match=".npz archive"):
        data.load_npz(tmp_path / "single.npy")
    np.savez(tmp_path / "nox.npz", images=np.zeros((2, 3, 3)))
    with pytest.raises(DataError, match=r"no array 'x'.*images"):
        data.load_npz(tmp_path / "nox.npz")


def test_npz_bad_shapes_and_labels(tmp_path):
    x = np.zeros((4, 3, 3), np.uint8)
    cases = {
        "chan": (dict(x=np.zeros((4, 3, 3, 2), np.uint8)), "C in"),
        "int": (dict(x=x.astype(np.int64)), "dtype int64"),
        "y2d": (dict(x=x, y=np.zeros((4, 1), np.int64)), r"reshape\(-1\)"),
        "ylen": (dict(x=x, y=np.zeros(3, np.int64)), r"\(4,\)"),
        "yfrac": (dict(x=x, y=np.array([0, 0.5, 1, 1])), "whole-number"),
        "yneg": (dict(x=x, y=np.array([0, -1, 1, 1])), "non-negative"),
    }
    for name, (arrays, pattern) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(DataError, match=pattern):
            data.load_npz(tmp_path / f"{name}.npz")
    # Whole-number float labels are accepted.
    np.savez(tmp_path / "yfloat.npz", x=x, y=np.array([0.0, 1.0, 1.0, 3.0]))
    loaded = data.load_npz(tmp_path / "yfloat.npz")
    # Classes are the ids present (id 2 has no images): indices 0..2, the ids kept as names.
    assert loaded.num_classes == 3 and loaded.class_names == ("0", "1", "3")
    np.testing.assert_array_equal(loaded.labels, [0, 1, 1, 2])


# --- folder ------------------------------------------------------------------

def test_folder_with_classes(tmp_path):
    write_png(tmp_path / "cat" / "b.png", (5, 4), value=10)
    write_png(tmp_path / "cat" / "a.PNG", (5, 4), value=20)
    write_png(tmp_path / "dog" / "x.jpg", (5, 4), mode="RGB", value=200)
    (tmp_path / "dog" / "notes.txt").write_text("ignored")
    (tmp_path / "empty").mkdir()
    ds = data.load(f"folder:{tmp_path}")
    assert ds.class_names == ("cat", "dog") and ds.num_classes == 2
    assert ds.labels.tolist() == [0, 0, 1]
    # One RGB image makes the whole set RGB; H x W follows pillow's (W, H) size.
    assert ds.images.shape == (3, 4, 5, 3)
    # Sorted file order: a.PNG (20) before b.png (10); grey converts to equal channels.
    np.testing.assert_allclose(ds.images[0], 20 / 255, atol=1e-6)
    np.testing.assert_allclose(ds.images[1], 10 / 255, atol=1e-6)


def test_folder_sixteen_bit_png_is_scaled(tmp_path):
    """A 16-bit grey PNG spans its full 0..65535 range in [0, 1] (pillow's convert("L") would clip
    every value above 255 to white), beside an 8-bit image of the same picture; resizing too."""
    from PIL import Image

    wide = np.linspace(0, 65535, 48).reshape(6, 8).astype(np.uint16)
    Image.fromarray(wide).save(tmp_path / "a.png")
    Image.fromarray((wide // 257).astype(np.uint8)).save(tmp_path / "b.png")
    ds = data.load(f"folder:{tmp_path}")
    assert ds.images.shape == (2, 6, 8, 1)
    np.testing.assert_allclose(ds.images[0, ..., 0], wide / 65535.0, atol=1e-6)
    np.testing.assert_allclose(ds.images[0], ds.images[1], atol=1 / 255)
    resized = data.load_folder(tmp_path, image_size=4).images
    assert resized.shape == (2, 4, 4, 1) and resized.max() > 0.5
    np.testing.assert_allclose(resized[0], resized[1], atol=2 / 255)


def test_folder_without_classes_is_grey_and_unlabelled(tmp_path):
    write_png(tmp_path / "1.png", (6, 6), value=0)
    write_png(tmp_path / "2.jpeg", (6, 6), value=255)
    write_png(tmp_path / "3.png", (6, 6), mode="1", value=1)
    ds = data.load_folder(tmp_path)
    assert ds.labels is None and ds.num_classes == 0 and ds.class_names == ()
    assert ds.images.shape == (3, 6, 6, 1)
    assert ds.images[0].max() == 0.0 and ds.images[2].min() == 1.0


def test_folder_mixed_sizes_error_and_resize(tmp_path):
    write_png(tmp_path / "a.png", (8, 8))
    write_png(tmp_path / "b.png", (6, 10))
    with pytest.raises(DataError, match=r"--set image_size=64") as err:
        data.load_folder(tmp_path)
    message = str(err.value)
    assert "a.png" in message and "b.png" in message
    assert "8x8" in message and "6x10" in message
    ds = data.load(f"folder:{tmp_path}", image_size=4)
    assert ds.images.shape == (2, 4, 4, 1)
    np.testing.assert_allclose(ds.images, 128 / 255, atol=1e-6)


def test_folder_unreadable_empty_and_mixed_layout(tmp_path):
    write_png(tmp_path / "good.png", (4, 4))
    (tmp_path / "broken.png").write_bytes(b"not really a png")
    with pytest.raises(DataError, match="broken.png"):
        data.load_folder(tmp_path)
    truncated = tmp_path / "t" / "cut.png"
    write_png(truncated, (64, 64), mode="RGB")
    truncated.write_bytes(truncated.read_bytes()[:60])
    with pytest.raises(DataError, match="cut.png"):
        data.load_folder(tmp_path / "t")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no images"):
        data.load_folder(tmp_path / "empty")
    mixed = tmp_path / "mixed"
    write_png(mixed / "loose.png", (4, 4))
    write_png(mixed / "cls" / "in.png", (4, 4))
    with pytest.raises(DataError, match="mixes images"):
        data.load_folder(mixed)


# --- spec --------------------------------------------------------------------

def test_spec_errors(tmp_path):
    with pytest.raises(DataError, match="valid forms: digits, mnist:DIR"):
        data.load("cifar10")
    with pytest.raises(DataError, match="names no path"):
        data.load("npz:")
    with pytest.raises(DataError, match="takes no argument"):
        data.load("digits:x")
    with pytest.raises(DataError, match="only folder: data is resized"):
        data.load("digits", image_size=32)
    assert data.load("digits", image_size=8).image_shape == (8, 8, 1)


def test_spec_relative_and_home_paths(tmp_path, monkeypatch):
    np.savez(tmp_path / "d.npz", x=np.zeros((2, 3, 3), np.uint8))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data.load("npz:d.npz").name == f"npz:{tmp_path / 'd.npz'}"
    assert len(data.load("npz:~/d.npz")) == 2


# --- batching ----------------------------------------------------------------

def test_batch_indices_deterministic_and_cover_each_epoch():
    n, batch, seed = 103, 10, 7
    steps = n // batch
    assert np.array_equal(data.batch_indices(13, batch, n, seed),
                          data.batch_indices(13, batch, n, seed))
    for epoch in range(2):
        seen = np.concatenate([data.batch_indices(epoch * steps + s, batch, n, seed)
                               for s in range(steps)])
        assert len(seen) == steps * batch and len(np.unique(seen)) == len(seen)
        np.testing.assert_array_equal(seen, data.epoch_permutation(seed, epoch, n)[:len(seen)])
    assert not np.array_equal(data.epoch_permutation(seed, 0, n), data.epoch_permutation(seed, 1, n))
    assert not np.array_equal(data.batch_indices(0, batch, n, seed), data.batch_indices(0, batch, n, seed + 1))
    assert sorted(data.epoch_permutation(seed, 3, n).tolist()) == list(range(n))


def test_batch_indices_results_are_independent_copies():
    first = data.batch_indices(0, 4, 20, 0)
    first[:] = -1
    assert (data.batch_indices(0, 4, 20, 0) >= 0).all()


def test_batch_errors_and_data_position():
    with pytest.raises(DataError, match="only 5 examples"):
        data.batch_indices(0, 8, 5, 0)
    assert data.data_position(0, 10, 103) == {"epoch": 0, "batch_in_epoch": 0}
    assert data.data_position(25, 10, 103) == {"epoch": 2, "batch_in_epoch": 5}


def test_process_rows_partition_the_batch():
    rows = [data.process_rows(12, i, 4) for i in range(4)]
    assert [(r.start, r.stop) for r in rows] == [(0, 3), (3, 6), (6, 9), (9, 12)]
    batch = np.arange(12)
    np.testing.assert_array_equal(np.concatenate([batch[r] for r in rows]), batch)
    with pytest.raises(DataError, match="multiple of 5"):
        data.process_rows(12, 0, 5)
    with pytest.raises(DataError, match="process_index"):
        data.process_rows(12, 4, 4)


def test_model_range_round_trip():
    x = np.linspace(0, 1, 11, dtype=np.float32)
    tanh = data.to_model_range(x, "tanh")
    assert tanh.min() == -1.0 and tanh.max() == 1.0 and tanh.dtype == np.float32
    np.testing.assert_allclose(data.from_model_range(tanh, "tanh"), x, atol=1e-7)
    assert data.to_model_range(x, "unit") is x
    np.testing.assert_array_equal(data.from_model_range(np.array([-0.5, 1.5]), "unit"), [0.0, 1.0])
    with pytest.raises(DataError, match="valid kinds: tanh, unit"):
        data.to_model_range(x, "sigmoid")
