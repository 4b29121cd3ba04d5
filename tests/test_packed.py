"""Packed data (``jsynth pack``, ``--data arrayrecord:DIR``) and the Grain input pipeline.

A packed 8-bit source reads back exactly; the streamed batches are bitwise the in-memory path's
(same order, same values after the on-device scaling); training from packed data equals training
from the same data in memory and resumes bitwise; on 2 processes each reads a disjoint half of
every batch, a SIGKILLed run resumes, and the parameters are those of 1 process x 2 devices.
"""
import json
import os
import signal
import time

import jax
import numpy as np
import pytest

from helpers import assert_trees_bitwise_equal, cache_env, compilation_cache, host  # noqa: F401
from jsynth import configs, data as jdata, parallel
from jsynth.checkpoint import Checkpointer
from jsynth.cli import main
from jsynth.data.arrayrecord import open_packed
from jsynth.launch import start_local, stop_all, wait_all
from jsynth.pack import PackError, pack
from jsynth.train import loop
from jsynth.train.stream import RECORD_LOG, PackedBatches
from jsynth.workdir import checkpoint_dir, read_config

NUM, SHARD = 64, 24  # shards of 24, 24 and 16 records


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """An 8-bit labelled npz (the digits, rounded to 0..255) and its packed copy: (npz spec, packed dir)."""
    root = tmp_path_factory.mktemp("data")
    digits = jdata.load("digits")
    x = np.rint(digits.images[:NUM] * 255).astype(np.uint8)
    np.savez(root / "d8.npz", x=x, y=digits.labels[:NUM])
    pack(f"npz:{root / 'd8.npz'}", str(root / "packed"), shard_size=SHARD)
    return f"npz:{root / 'd8.npz'}", str(root / "packed")


def test_pack_writes_shards_metadata_and_reads_back_exactly(source):
    spec, packed_dir = source
    metadata = json.load(open(os.path.join(packed_dir, "metadata.json")))
    assert metadata["num"] == NUM and metadata["image_shape"] == [8, 8, 1] and metadata["dtype"] == "uint8"
    assert [s["num"] for s in metadata["shards"]] == [24, 24, 16]
    assert sum(metadata["class_counts"]) == NUM and metadata["num_classes"] == 10
    packed, memory = jdata.load(f"arrayrecord:{packed_dir}"), jdata.load(spec)
    assert len(packed) == NUM and packed.image_shape == (8, 8, 1) and packed.num_classes == 10
    assert "images" not in packed.__dict__  # opening reads no image
    assert packed.images.tobytes() == memory.images.tobytes()  # the float32 values of the 8-bit source
    np.testing.assert_array_equal(packed.labels, memory.labels)


def test_pack_and_packed_data_errors(source, tmp_path):
    spec, packed_dir = source
    with pytest.raises(PackError, match="not empty"):
        pack(spec, packed_dir)
    with pytest.raises(PackError, match="--shard-size must be positive"):
        pack(spec, str(tmp_path / "new"), shard_size=0)
    with pytest.raises(jdata.DataError, match="not a packed data set.*jsynth pack"):
        jdata.load(f"arrayrecord:{tmp_path}")
    damaged = tmp_path / "damaged"
    pack(spec, str(damaged), shard_size=SHARD)
    shard = damaged / "data-00001.array_record"
    data = bytearray(shard.read_bytes())
    data[-40] ^= 0xFF
    shard.write_bytes(bytes(data))
    with pytest.raises(jdata.DataError, match="does not match its sha256"):
        open_packed(str(damaged)).images
    os.remove(shard)
    with pytest.raises(jdata.DataError, match="lacks the shard data-00001"):
        jdata.load(f"arrayrecord:{damaged}")
    # The command line: one line, exit 2.
    assert main(["pack", "--data", spec, "--out", packed_dir]) == 2


@pytest.mark.parametrize("data_range", ["tanh", "unit"])
def test_streamed_batches_are_the_in_memory_batches_bitwise(source, data_range):
    spec, packed_dir = source
    memory = jdata.load(spec)
    images = jdata.to_model_range(memory.images, data_range)
    mesh, batch_size, seed, start = parallel.data_mesh(8), 16, 3, 5  # from step 5: a resumed run
    batches = PackedBatches(open_packed(packed_dir), mesh=mesh, batch_size=batch_size, seed=seed,
                            rows=slice(0, batch_size), start=start, steps=start + 6, data_range=data_range,
                            conditional=True)
    for step in range(start, start + 6):  # 4 steps an epoch: crosses into a new permutation
        batch = next(batches)
        index = jdata.batch_indices(step, batch_size, NUM, seed)
        assert np.asarray(batch["image"]).tobytes() == images[index].tobytes()
        np.testing.assert_array_equal(np.asarray(batch["label"]), memory.labels[index])
        assert batch["image"].sharding == parallel.batch_sharding(mesh)
    assert batches.records_read == 6 * batch_size
    with pytest.raises(StopIteration):
        next(batches)


# ---- training --------------------------------------------------------------------------------

STEPS = 8
TRAIN = ["train", "--model", "mlpvae", "--conditional", "--steps", str(STEPS), "--batch-size", "16",
         "--checkpoint-every", "2", "--set", "width=16", "--set", "latent_dim=8",
         "--set", "progress=false", "--set", "log_every=2", "--set", "sample_every=1000"]


def tiny(data, **changes):
    return configs.tiny("mlpvae", **{**dict(conditional=True, data=data, steps=STEPS, checkpoint_every=2),
                                     **changes})


def saved_state(workdir):
    setup = loop.prepare(read_config(workdir))
    checkpoints = Checkpointer(checkpoint_dir(workdir))
    state, _ = checkpoints.restore(checkpoints.latest_step(), loop.abstract_state(setup))
    checkpoints.close()
    return checkpoints.latest_step(), host(state)


@pytest.fixture(scope="module")
def two_device_run(source, tmp_path_factory):
    """Packed data, 1 process x 2 devices, uninterrupted."""
    workdir = str(tmp_path_factory.mktemp("ref") / "run")
    return workdir, host(loop.run(tiny(f"arrayrecord:{source[1]}", num_devices=2), workdir))


@pytest.mark.slow
def test_packed_training_equals_in_memory_training_and_resumes_bitwise(source, two_device_run, tmp_path):
    spec, packed_dir = source
    _, packed_state = two_device_run
    in_memory = host(loop.run(tiny(spec, num_devices=2), str(tmp_path / "memory")))
    assert_trees_bitwise_equal(packed_state, in_memory)
    stopped = str(tmp_path / "stopped")
    loop.run(tiny(f"arrayrecord:{packed_dir}", num_devices=2, steps=3), stopped)  # stops at step 3
    resumed = loop.run(tiny(f"arrayrecord:{packed_dir}", num_devices=2), stopped)
    assert_trees_bitwise_equal(host(resumed), packed_state)


def finished_checkpoints(workdir):
    directory = checkpoint_dir(workdir)
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit()) if os.path.isdir(directory) else []


@pytest.mark.slow  # two 2-process launches (~30 s)
def test_two_processes_read_disjoint_halves_resume_after_sigkill_and_match_one_process(
        source, two_device_run, compilation_cache, tmp_path):
    """The issue's done-when test: 2 processes x 1 device on loopback, from an ArrayRecord set."""
    _, packed_dir = source
    reference_dir, reference = two_device_run
    workdir, logs = str(tmp_path / "run"), tmp_path / "records"
    logs.mkdir()
    env = dict(cache_env(compilation_cache), **{RECORD_LOG: str(logs)})
    args = TRAIN + ["--data", f"arrayrecord:{packed_dir}", "--workdir", workdir]
    processes, process_logs = start_local(args, 2, devices_per_process=1, log_dir=str(tmp_path / "logs-1"),
                                          env=env)
    try:
        deadline = time.monotonic() + 240
        while not finished_checkpoints(workdir) and all(p.poll() is None for p in processes):
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.01)
    finally:
        stop_all(processes, signal.SIGKILL)
    killed = wait_all(processes, process_logs, 60)
    at_kill = finished_checkpoints(workdir)
    assert any(code == -signal.SIGKILL for code in killed.returncodes) and at_kill and at_kill[-1] < STEPS, (
        killed.returncodes, at_kill, open(process_logs[0]).read()[-2000:])
    rerun = wait_all(*start_local(args, 2, devices_per_process=1, log_dir=str(tmp_path / "logs-2"), env=env), 240)
    assert rerun.ok, "\n".join(open(log).read()[-2000:] for log in rerun.logs)

    step, final = saved_state(workdir)
    assert step == STEPS
    assert_trees_bitwise_equal(final, reference)  # resumed bitwise, and the parameters of 1 x 2 devices
    # Each process read its own half of every batch: 8 of the 16 rows, disjoint from the other's.
    per_step = {}
    for process in (0, 1):
        rows = np.fromfile(logs / f"process-{process}.bin", np.int64).reshape(-1, 1 + 8)
        per_step[process] = {int(r[0]): r[1:] for r in rows}  # a step read again after the kill: same records
        assert sorted(per_step[process]) == list(range(STEPS))
    for step in range(STEPS):
        expected = jdata.batch_indices(step, 16, NUM, read_config(workdir).seed)
        np.testing.assert_array_equal(per_step[0][step], expected[:8])
        np.testing.assert_array_equal(per_step[1][step], expected[8:])
    epoch = [np.concatenate([per_step[p][s] for s in range(NUM // 16)]) for p in (0, 1)]
    assert len(set(epoch[0]) & set(epoch[1])) == 0 and len(epoch[0]) == len(epoch[1]) == NUM // 2
    assert sorted(set(epoch[0]) | set(epoch[1])) == list(range(NUM))  # together: the whole set, once
    assert reference_dir != workdir


def test_bench_input_reports_both_pipelines(capsys):
    assert main(["bench", "input", "--json", "--batch-size", "32", "--steps", "2", "--rounds", "1"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["source"] for r in records] == ["in_memory", "packed"]
    for record in records:
        assert record["bench"] == "input" and record["num"] == 64 and record["batch_size"] == 32
        assert record["images_per_s"] > 0 and len(record["seconds_all"]) == 1
        assert record["data"] == "digits" and record["devices"] == 8
