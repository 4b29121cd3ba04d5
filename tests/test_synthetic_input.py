"""``jsynth eval --samples`` input: every format brought to [0, 1], labels matched to the real
classes by name, and bad input refused with a message naming the file."""
import json

import numpy as np
import pytest
from PIL import Image

from jsynth.errors import InputError
from jsynth.evaluate.synthetic import load_synthetic
from jsynth.images import grid, tiles

RNG = np.random.default_rng(3)
PIXELS = RNG.integers(0, 256, size=(6, 8, 8), dtype=np.uint8)
LABELS = np.array([2, 0, 1, 0, 2, 1])
UNIT = PIXELS[..., None].astype(np.float32) / 255.0  # (N, H, W, 1) in [0, 1]
DIGIT_NAMES = tuple(str(i) for i in range(10))


def test_a_folder_of_class_folders_is_matched_to_the_real_classes_by_name(tmp_path):
    for i, (image, label) in enumerate(zip(PIXELS, LABELS)):
        folder = tmp_path / "png" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, "L").save(folder / f"{i:02d}.png")
    real_names = ("class2", "class0", "class1")  # another order than the folders' sorted names
    x, y = load_synthetic(str(tmp_path / "png"), real_names)
    order = np.argsort(LABELS, kind="stable")  # class folders in name order, files sorted within
    assert x.dtype == np.float32 and x.shape == (6, 8, 8, 1)
    np.testing.assert_array_equal(x, UNIT[order])
    np.testing.assert_array_equal(y, [real_names.index(f"class{label}") for label in LABELS[order]])
    with pytest.raises(InputError, match="class0, class1, class2, which the real data's classes"):
        load_synthetic(str(tmp_path / "png"), DIGIT_NAMES)


def test_npz_formats_come_to_the_unit_range(tmp_path):
    np.savez(tmp_path / "uint8.npz", x=PIXELS, y=LABELS)
    x, y = load_synthetic(str(tmp_path / "uint8.npz"), DIGIT_NAMES)
    assert x.dtype == np.float32 and y.dtype == np.int32
    np.testing.assert_array_equal(x, UNIT)
    np.testing.assert_array_equal(y, LABELS)

    np.savez(tmp_path / "tanh.npz", x=UNIT * 2.0 - 1.0)
    x, y = load_synthetic(str(tmp_path / "tanh.npz"))
    assert y is None
    np.testing.assert_allclose(x, UNIT, atol=1e-6)

    # Rounding overshoots (a tanh output of -1.0000002) are clipped, not mistaken or refused.
    overshoot = UNIT * 2.0 - 1.0
    overshoot[0, 0, 0, 0], overshoot[1, 0, 0, 0] = -1.0002, 1.0002
    x, _ = load_synthetic(_saved(tmp_path, "overshoot", x=overshoot))
    assert x.min() == 0.0 and x.max() == 1.0
    np.testing.assert_allclose(x[2:], UNIT[2:], atol=1e-6)
    slightly = UNIT.copy()
    slightly[0, 0, 0, 0] = 1.0004
    np.testing.assert_allclose(load_synthetic(_saved(tmp_path, "slightly", x=slightly))[0], np.clip(slightly, 0, 1))


def test_bare_ids_are_the_real_datas_ids(tmp_path):
    sparse_names = tuple(str(i) for i in range(100, 110))  # an npz with ids 100..109
    x, y = load_synthetic(_saved(tmp_path, "ids", x=PIXELS, y=LABELS + 100), sparse_names)
    np.testing.assert_array_equal(y, LABELS)
    with pytest.raises(InputError, match=r"labels \[0, 1, 2\], which are not ids"):
        load_synthetic(_saved(tmp_path, "indices", x=PIXELS, y=LABELS), sparse_names)


def test_a_manifest_says_what_its_labels_mean(tmp_path):
    """jsynth's own PNG-grid shards: images cut from the grid, labels named by the manifest."""
    out = tmp_path / "out"
    out.mkdir()
    pixels = grid(UNIT, pad=0)
    Image.fromarray(pixels[..., 0]).save(out / "part-00000.png")
    from jsynth.shards import sha256_file
    manifest = {"num": 6, "seed": 0, "format": "png", "image_shape": [8, 8, 1], "class_names": ["7", "8", "9"],
                "label_ids": [7, 8, 9], "shards": [{"index": 0, "file": "part-00000.png", "num": 6,
                                                     "sha256": sha256_file(str(out / "part-00000.png")),
                                                     "labels": (LABELS + 7).tolist()}]}
    (out / "manifest.json").write_text(json.dumps(manifest))
    x, y = load_synthetic(str(out), DIGIT_NAMES)
    np.testing.assert_array_equal(x, UNIT)
    np.testing.assert_array_equal(y, LABELS + 7)


def test_tiles_inverts_grid():
    images = RNG.random((7, 5, 3, 3)).astype(np.float32)
    np.testing.assert_array_equal(tiles(grid(images, pad=0), 7, (5, 3, 3)),
                                  (np.clip(images, 0, 1) * 255 + 0.5).astype(np.uint8))


@pytest.mark.parametrize("arrays, fragments", [
    (dict(x=np.zeros((0, 8, 8), np.float32)), ["holds no images"]),
    (dict(x=np.full((2, 8, 8), np.nan, np.float32)), ["NaN"]),
    (dict(x=np.array([["a"] * 8] * 8)[None]), ["dtype <U1"]),
    (dict(x=UNIT * 4.0 - 2.0), ["range [-2.0, 2.0]"]),
    (dict(x=PIXELS, y=LABELS + 0.5), ["not whole-number class ids"]),
    (dict(x=PIXELS, y=LABELS[:4]), ["shape (4,)", "(6,)"]),
    (dict(x=PIXELS, y=np.array(["a"] * 6)), ["dtype <U1"]),
], ids=["empty", "nan", "strings", "out-of-range", "fractional-labels", "short-labels", "string-labels"])
def test_bad_samples_are_refused_naming_the_file(tmp_path, arrays, fragments):
    path = _saved(tmp_path, "bad", **arrays)
    with pytest.raises(InputError) as raised:
        load_synthetic(path, DIGIT_NAMES)
    for fragment in (path, *fragments):
        assert fragment in str(raised.value)


def _saved(tmp_path, name, **arrays) -> str:
    path = str(tmp_path / f"{name}.npz")
    np.savez(path, **arrays)
    return path
