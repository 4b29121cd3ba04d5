"""The sampling core (jsynth.sampling) and shard writing (jsynth.generate.sample_to_disk).

Sample i depends only on (seed, i): latents are bitwise identical whatever the chunk size or device
count, outputs agree to float tolerance (bitwise for the same chunk size and devices), chunks
compile once, and an interrupted ``sample`` finishes with the same files as an uninterrupted one.
"""
import hashlib
import json
import os
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from helpers import (DIGITS_CLASSES, DIGITS_SHAPE, TraceCounter, assert_trees_bitwise_equal,  # noqa: F401
                     compilation_cache, host, tiny_family)
from jsynth import configs, parallel, sampling
from jsynth.generate import sample_to_disk
from jsynth.shards import SampleOutputError, load_samples, read_manifest
from jsynth.train import loop
from jsynth.trained import load_trained

LATENT = 8
MESH8 = parallel.data_mesh(8)
MESH1 = parallel.data_mesh(1)


def latent_decode(variables, z, labels):
    """A 'model' whose images are its latents: the sampling core is model-agnostic."""
    del variables, labels
    return z[:, :, None, None]


@pytest.fixture(scope="module")
def generator():
    """(decode, variables) of a tiny conditional DCGAN at its initial weights."""
    _, family = tiny_family("dcgan", conditional=True)
    state = jax.jit(family.init, out_shardings=parallel.replicated(MESH8))(jax.random.key(0))
    return family.decode, host(family.sample_variables(state))


# ---- the core ------------------------------------------------------------------------------

@pytest.mark.slow
def test_latents_are_bitwise_identical_whatever_the_chunk_size_and_devices():
    # device_rows: each device decodes its rows that many at a time (lax.map); no sample changes.
    results = [sampling.sample(latent_decode, {}, num=40, latent_dim=LATENT, seed=3, chunk_size=c,
                               mesh=m, device_rows=r)[0]
               for c, m, r in ((8, None, None), (16, MESH8, None), (40, MESH1, None), (24, MESH8, None),
                               (40, MESH1, 8), (24, MESH8, 2), (16, None, 5))]
    for z in results[1:]:
        assert z.dtype == np.float32 and z.tobytes() == results[0].tobytes()
    z = results[0][:, :, 0, 0]
    assert z.shape == (40, LATENT)
    # Row i is N(0, I) drawn from fold_in(key(seed), i) and nothing else.
    for i in (0, 17, 39):
        expected = jax.random.normal(jax.random.fold_in(jax.random.key(3), i), (LATENT,))
        np.testing.assert_array_equal(z[i], expected)
    # A request starting at sample 10 holds the same samples 10..14.
    later, _ = sampling.sample(latent_decode, {}, num=5, latent_dim=LATENT, seed=3, chunk_size=8, start=10)
    np.testing.assert_array_equal(later[:, :, 0, 0], z[10:15])
    other_seed, _ = sampling.sample(latent_decode, {}, num=40, latent_dim=LATENT, seed=4, chunk_size=8)
    assert not np.allclose(other_seed[:, :, 0, 0], z)


@pytest.mark.slow
def test_outputs_agree_across_chunk_sizes_and_devices(generator):
    decode, variables = generator
    run = lambda chunk, mesh, rows=None: sampling.sample(decode, variables, num=40, latent_dim=LATENT, seed=5,
                                                         chunk_size=chunk, num_classes=DIGITS_CLASSES, mesh=mesh,
                                                         device_rows=rows)
    images, labels = run(16, MESH8)
    assert images.shape == (40, 8, 8, 1) and images.dtype == np.float32
    assert np.all((images >= 0) & (images <= 1)) and images.std() > 0
    again, labels_again = run(16, MESH8)  # same chunk size and devices: the same bytes
    assert again.tobytes() == images.tobytes()
    np.testing.assert_array_equal(labels, labels_again)
    for chunk, mesh, rows in ((8, MESH8, None), (40, MESH1, None), (24, None, None), (40, MESH1, 8),
                              (16, MESH8, 1)):
        other, other_labels = run(chunk, mesh, rows)
        np.testing.assert_allclose(other, images, rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(other_labels, labels)


def test_one_compile_for_many_chunks(generator):
    decode, variables = generator
    counted = TraceCounter(decode)
    chunk_fn = sampling.make_chunk_fn(counted, latent_dim=LATENT, chunk_size=8,
                                      num_classes=DIGITS_CLASSES, mesh=MESH8)
    chunks = list(sampling.sample_chunks(chunk_fn, variables, seed=1, start=0, stop=50, chunk_size=8))
    assert [c.start for c in chunks] == list(range(0, 50, 8))
    assert [len(c.images) for c in chunks] == [8] * 6 + [2]  # the last chunk is trimmed on the host
    # A new seed, position or fixed label is a traced value, not a new program.
    list(sampling.sample_chunks(chunk_fn, variables, seed=9, start=3, stop=20, chunk_size=8, label=4))
    assert counted.count == 1
    assert chunk_fn._cache_size() == 1
    assert list(sampling.sample_chunks(chunk_fn, variables, seed=1, start=8, stop=8, chunk_size=8)) == []


def test_balanced_and_fixed_labels(generator):
    decode, variables = generator
    run = lambda label: sampling.sample(decode, variables, num=25, latent_dim=LATENT, seed=2,
                                        chunk_size=16, num_classes=DIGITS_CLASSES, label=label, mesh=MESH8)
    balanced, labels = run(sampling.BALANCED)
    np.testing.assert_array_equal(labels, np.arange(25) % DIGITS_CLASSES)
    assert labels.dtype == np.int32
    fixed, fixed_labels = run(3)
    np.testing.assert_array_equal(fixed_labels, np.full(25, 3))
    # Same (seed, i) and label: the same image; another label: another image.
    same = labels == 3
    np.testing.assert_allclose(fixed[same], balanced[same], rtol=1e-6, atol=1e-7)
    assert all(not np.allclose(fixed[i], balanced[i]) for i in np.flatnonzero(~same))


def test_chunk_size_must_divide_the_devices(generator):
    decode, _ = generator
    with pytest.raises(ValueError, match="does not divide over 8 devices"):
        sampling.make_chunk_fn(decode, latent_dim=LATENT, chunk_size=12, mesh=MESH8)
    with pytest.raises(ValueError, match="positive"):
        sampling.sample(decode, {}, num=0, latent_dim=LATENT)


# ---- shards on disk --------------------------------------------------------------------------

NUM, BATCH, SHARD = 40, 8, 16  # three shards: 16, 16 and 8 samples


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A tiny conditional DCGAN trained for 2 steps on the digits."""
    path = str(tmp_path_factory.mktemp("run") / "dcgan")
    loop.run(configs.tiny("dcgan", conditional=True, steps=2, checkpoint_every=2), path)
    return path


def write(workdir, out, **kwargs):
    options = dict(num=NUM, batch_size=BATCH, seed=11, shard_size=SHARD, progress=False)
    return sample_to_disk(workdir, str(out), **{**options, **kwargs})


@pytest.fixture(scope="module")
def complete(workdir, tmp_path_factory):
    """An uninterrupted request: (out dir, manifest)."""
    out = tmp_path_factory.mktemp("samples") / "complete"
    return out, write(workdir, out)


def snapshot(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


def test_sample_to_disk_writes_shards_and_a_manifest(workdir, complete):
    out, manifest = complete
    assert manifest == read_manifest(str(out))
    assert manifest["num"] == NUM and manifest["seed"] == 11 and manifest["checkpoint_step"] == 2
    assert [(e["file"], e["num"]) for e in manifest["shards"]] == [
        ("part-00000.npz", 16), ("part-00001.npz", 16), ("part-00002.npz", 8)]
    for entry in manifest["shards"]:
        assert hashlib.sha256((out / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]
    assert sorted(os.listdir(out)) == ["manifest.json", "part-00000.npz", "part-00001.npz", "part-00002.npz"]
    x, y, _ = load_samples(str(out))
    assert x.shape == (NUM, 8, 8, 1) and x.dtype == np.float32 and y.dtype == np.int32
    assert np.all((x >= 0) & (x <= 1))
    np.testing.assert_array_equal(y, np.arange(NUM) % DIGITS_CLASSES)
    # The files hold what the sampling core gives for the trained model, bitwise.
    model = load_trained(workdir, mesh=MESH8)
    assert model.step == 2
    images, labels = sampling.sample(model.decode, model.variables, num=NUM, latent_dim=model.latent_dim,
                                     seed=11, chunk_size=BATCH, num_classes=model.num_classes, mesh=MESH8)
    assert images.tobytes() == x.tobytes()
    np.testing.assert_array_equal(labels, y)


@pytest.mark.slow
def test_load_trained_reads_only_the_sampling_weights(workdir, tmp_path):
    """Sampling restores the EMA generator (or the raw one) and its BatchNorm statistics alone.

    The copy's config names another optimiser (SGD: a different state structure), so restoring
    any optimiser state would fail; the discriminator is never built into the target either.
    """
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, "optimizer": "sgd"}))
    # The full state, restored by the loop from a second copy (a finished run: no step is taken).
    shutil.copytree(workdir, tmp_path / "full")
    trained = host(loop.run(configs.tiny("dcgan", conditional=True, steps=2, checkpoint_every=2),
                            str(tmp_path / "full")))
    for use_ema, params in ((True, trained.ema_params), (False, trained.g_params)):
        model = load_trained(str(copy), mesh=MESH8, use_ema=use_ema)
        variables = host(model.variables)
        assert_trees_bitwise_equal(variables["params"], params)
        assert_trees_bitwise_equal(variables["batch_stats"], trained.g_batch_stats)


def test_a_restarted_request_writes_only_the_missing_shards(workdir, complete, tmp_path):
    source, _ = complete
    out = tmp_path / "interrupted"
    shutil.copytree(source, out)
    # As if killed after shard 1 was written but before shard 2 was: its file and entry are gone.
    os.remove(out / "part-00002.npz")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["shards"] = manifest["shards"][:2]
    (out / "manifest.json").write_text(json.dumps(manifest))
    kept = {name: os.stat(out / name) for name in ("part-00000.npz", "part-00001.npz")}
    write(workdir, out)
    for name, before in kept.items():
        after = os.stat(out / name)
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns), name
    assert snapshot(out) == snapshot(source)


def test_a_damaged_shard_is_written_again(workdir, complete, tmp_path):
    source, _ = complete
    out = tmp_path / "damaged"
    shutil.copytree(source, out)
    data = bytearray((out / "part-00001.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF  # its sha256 no longer matches the manifest
    (out / "part-00001.npz").write_bytes(bytes(data))
    kept = os.stat(out / "part-00000.npz")
    write(workdir, out)
    assert os.stat(out / "part-00000.npz").st_mtime_ns == kept.st_mtime_ns
    assert snapshot(out) == snapshot(source)


def test_a_request_failing_part_way_finishes_on_restart(workdir, complete, tmp_path, monkeypatch):
    source, _ = complete
    out = tmp_path / "failed"
    real = sampling.sample_chunks
    served = []

    def failing(*args, **kwargs):  # the third chunk (half of shard 1) never arrives
        for chunk in real(*args, **kwargs):
            if len(served) == 2:
                raise RuntimeError("interrupted")
            served.append(chunk.start)
            yield chunk

    monkeypatch.setattr(sampling, "sample_chunks", failing)
    with pytest.raises(RuntimeError, match="interrupted"):
        write(workdir, out)
    assert sorted(os.listdir(out)) == ["manifest.json", "part-00000.npz"]
    assert [e["file"] for e in read_manifest(str(out))["shards"]] == ["part-00000.npz"]
    monkeypatch.setattr(sampling, "sample_chunks", real)
    write(workdir, out)
    assert snapshot(out) == snapshot(source)


def test_a_different_request_into_the_same_directory_is_refused(workdir, complete, tmp_path):
    source, _ = complete
    out = tmp_path / "other"
    shutil.copytree(source, out)
    with pytest.raises(SampleOutputError, match=r"different request.*seed"):
        write(workdir, out, seed=12)
    with pytest.raises(SampleOutputError, match=r"different request.*num"):
        write(workdir, out, num=48)
    assert snapshot(out) == snapshot(source)


def test_a_tampered_shard_is_refused_by_load_samples(complete, tmp_path):
    """``eval --samples DIR`` reads through ``load_samples``: a shard changed after it was written
    (its sha256 no longer the manifest's) or missing is an error, never evaluated."""
    source, _ = complete
    out = tmp_path / "tampered"
    shutil.copytree(source, out)
    assert len(load_samples(str(out))[0]) == NUM  # intact: read
    with np.load(out / "part-00001.npz") as shard:
        arrays = {"x": shard["x"] * 0.5, "y": shard["y"]}
    np.savez(out / "part-00001.npz", **arrays)
    with pytest.raises(SampleOutputError, match=r"part-00001\.npz does not match the sha256"):
        load_samples(str(out))
    os.remove(out / "part-00001.npz")
    with pytest.raises(SampleOutputError, match=r"part-00001\.npz is listed .* but missing"):
        load_samples(str(out))


@pytest.mark.parametrize("damage", ["parent"] + [pytest.param(d, marks=pytest.mark.slow)
                                                for d in ("absolute", "subdir", "no-shards", "not-a-dict")])
def test_a_manifest_pointing_outside_its_directory_is_refused(workdir, complete, tmp_path, damage):
    """Neither ``sample`` (resuming) nor ``eval`` (reading) follows a manifest entry out of OUT."""
    source, _ = complete
    out = tmp_path / "edited"
    shutil.copytree(source, out)
    outside = tmp_path / "outside.npz"
    shutil.copy(out / "part-00000.npz", outside)
    manifest = json.loads((out / "manifest.json").read_text())
    if damage == "no-shards":
        del manifest["shards"]
    elif damage == "not-a-dict":
        manifest["shards"][0] = "part-00000.npz"
    else:
        manifest["shards"][0]["file"] = {"absolute": str(outside), "parent": "../outside.npz",
                                         "subdir": "sub/part-00000.npz"}[damage]
    (out / "manifest.json").write_text(json.dumps(manifest))
    before = snapshot(out)
    fragment = "no 'shards' list" if damage == "no-shards" else "not a file name inside"
    with pytest.raises(SampleOutputError, match=fragment):
        load_samples(str(out))
    with pytest.raises(SampleOutputError, match=fragment):
        write(workdir, out)
    assert snapshot(out) == before  # nothing rewritten
    assert outside.read_bytes() == (source / "part-00000.npz").read_bytes()


def test_files_sample_did_not_write_are_never_replaced(workdir, tmp_path):
    out = tmp_path / "theirs"
    out.mkdir()
    (out / "part-00001.npz").write_bytes(b"someone else's file")
    with pytest.raises(SampleOutputError, match=r"part-00001\.npz but no manifest\.json.*another --out"):
        write(workdir, out)
    assert sorted(os.listdir(out)) == ["part-00001.npz"]
    assert (out / "part-00001.npz").read_bytes() == b"someone else's file"


def test_fixed_label_and_png_shards(workdir, tmp_path):
    manifest = write(workdir, tmp_path / "png", fmt="png", num=20, label=4)
    assert [e["file"] for e in manifest["shards"]] == ["part-00000.png", "part-00001.png"]
    assert manifest["label"] == 4
    for entry, count in zip(manifest["shards"], (16, 4)):
        path = tmp_path / "png" / entry["file"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert entry["num"] == count and entry["labels"] == [4] * count
        with Image.open(path) as image:
            assert image.format == "PNG" and image.mode == "L"
            # One grid per shard without padding: 16 images as 4x4, 4 images as 2x2 (8x8 pixels each).
            assert image.size == {16: (32, 32), 4: (16, 16)}[count]
    write(workdir, tmp_path / "npz", num=10, label=4)
    _, y, _ = load_samples(str(tmp_path / "npz"))
    np.testing.assert_array_equal(y, np.full(10, 4))


def test_bad_sampling_requests(workdir, tmp_path):
    with pytest.raises(SampleOutputError, match=r"--label 10 is not a class of .*; its classes are 0, 1, 2"):
        write(workdir, tmp_path / "a", label=10)
    with pytest.raises(ValueError, match="does not divide over 8 devices"):
        write(workdir, tmp_path / "b", batch_size=12)
    with pytest.raises(SampleOutputError, match="positive"):
        write(workdir, tmp_path / "c", num=0)


def test_repeated_sampling_of_one_model_traces_once():
    """``sample`` called again (a new grid, an in-loop FD, ``jsynth eval``) with an equal decoder
    reuses the compiled chunk function: the decoder is traced once across all calls."""
    from jsynth.families import GeneratorDecode
    from jsynth.models import MLPGenerator

    traces = []

    class CountingGenerator(MLPGenerator):
        def __call__(self, z, labels=None, train: bool = False):
            traces.append(z.shape)
            return super().__call__(z, labels, train)

    module = CountingGenerator(DIGITS_SHAPE, hidden=8, num_classes=DIGITS_CLASSES, latent_dim=LATENT)
    variables = module.init(jax.random.key(0), np.zeros((1, LATENT)), np.zeros((1,), np.int32))
    traces.clear()
    results = []
    for seed in (1, 2, 1):
        # A fresh, equal decoder each time, as ``load_trained`` and the loop build them.
        decode = GeneratorDecode(CountingGenerator(DIGITS_SHAPE, hidden=8, num_classes=DIGITS_CLASSES,
                                                   latent_dim=LATENT))
        results.append(sampling.sample(decode, variables, num=20, latent_dim=LATENT, seed=seed,
                                       chunk_size=8, num_classes=DIGITS_CLASSES, mesh=MESH8)[0])
    assert len(traces) == 1
    np.testing.assert_array_equal(results[0], results[2])
    assert not np.array_equal(results[0], results[1])
