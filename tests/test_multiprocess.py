"""Multi-process runs on loopback: 2 processes x 2 host devices against 1 process x 4.

Every launch is bounded in time and ends only the processes it started (their own sessions).
"""
import os
import signal
import time

import jax
import numpy as np
import pytest

from jsynth import configs
from jsynth.generate import sample_to_disk
from jsynth.checkpoint import Checkpointer
from jsynth.launch import launch_local, start_local, stop_all, wait_all
from jsynth.shards import load_samples, read_manifest
from jsynth.train import loop
from jsynth.workdir import checkpoint_dir, read_config

# Every test here launches processes (20-30 s each on 2 cores): the full run only.
pytestmark = pytest.mark.slow

TIMEOUT_S = 240
STEPS = 24
TRAIN = ["train", "--model", "dcgan", "--conditional", "--steps", str(STEPS), "--batch-size", "16",
         "--checkpoint-every", "2", "--set", "width=4", "--set", "latent_dim=8",
         "--set", "progress=false", "--set", "log_every=2", "--set", "sample_every=1000"]


def final_state(workdir, step=None):
    """The saved state of a run at ``step`` (default: latest) as numpy arrays."""
    setup = loop.prepare(read_config(workdir))
    checkpoints = Checkpointer(checkpoint_dir(workdir))
    step = step or checkpoints.latest_step()
    state, _ = checkpoints.restore(step, loop.abstract_state(setup))
    checkpoints.close()
    return step, jax.tree.map(np.asarray, state)


def assert_launch_ok(result):
    assert result.ok, "\n".join(open(log).read()[-2000:] for log in result.logs)


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    """The same config in this process, on 4 of its 8 host devices."""
    workdir = str(tmp_path_factory.mktemp("one") / "run")
    config = configs.with_overrides(configs.TrainConfig(
        model="dcgan", conditional=True, steps=STEPS, batch_size=16, checkpoint_every=2),
        ["width=4", "latent_dim=8", "progress=false", "log_every=2", "sample_every=1000", "num_devices=4"])
    loop.run(config, workdir)
    return workdir


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("two")
    result = launch_local(TRAIN + ["--workdir", str(root / "run")], 2, devices_per_process=2,
                          timeout_s=TIMEOUT_S, log_dir=str(root / "logs"))
    assert_launch_ok(result)
    return str(root / "run")


def test_two_processes_train_like_one(one_process_run, two_process_run):
    step_one, one = final_state(one_process_run)
    step_two, two = final_state(two_process_run)
    assert step_one == step_two == STEPS
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # Only process 0 writes the logs: one line per logged step.
    with open(os.path.join(two_process_run, "metrics.jsonl")) as f:
        steps = [line.split(",")[0] for line in f]
    assert len(steps) == len(set(steps)) == STEPS // 2


def wait_for_checkpoint(workdir, processes, at_least=4, timeout_s=TIMEOUT_S):
    directory = checkpoint_dir(workdir)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        steps = [int(d) for d in os.listdir(directory) if d.isdigit()] if os.path.isdir(directory) else []
        if steps and max(steps) >= at_least:
            return max(steps)
        if any(p.poll() is not None for p in processes):
            break
        time.sleep(0.02)
    stop_all(processes)
    pytest.fail("the run ended or stalled before its first checkpoints")


def rerun_and_compare(args, workdir, reference_workdir, tmp_path):
    """Reruns the same command to the end; its parameters must equal the uninterrupted run's."""
    assert_launch_ok(launch_local(args, 2, devices_per_process=2, timeout_s=TIMEOUT_S,
                                  log_dir=str(tmp_path / "logs-2")))
    _, resumed = final_state(workdir)
    _, reference = final_state(reference_workdir)
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(reference)):
        np.testing.assert_array_equal(a, b)


def test_killed_two_process_run_resumes_bitwise(two_process_run, tmp_path):
    workdir = str(tmp_path / "run")
    args = TRAIN + ["--workdir", workdir]
    processes, logs = start_local(args, 2, devices_per_process=2, log_dir=str(tmp_path / "logs-1"))
    seen = wait_for_checkpoint(workdir, processes)
    stop_all(processes, signal.SIGKILL)
    wait_all(processes, logs, 30)
    assert seen < STEPS, "the run finished before it could be killed"
    rerun_and_compare(args, workdir, two_process_run, tmp_path)


def test_sigterm_saves_at_an_agreed_step_and_resumes(two_process_run, tmp_path):
    workdir = str(tmp_path / "run")
    args = TRAIN + ["--workdir", workdir, "--checkpoint-every", "1000"]
    processes, logs = start_local(args, 2, devices_per_process=2, log_dir=str(tmp_path / "logs-1"))
    # Signal as soon as the processes talk to each other (JAX's preemption notifier is installed
    # by then): a tiny run would otherwise finish before the processes agree on a step.
    deadline = time.monotonic() + TIMEOUT_S
    while "connected to" not in open(logs[1]).read() and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(processes[1].pid, signal.SIGTERM)  # one process is told; both must stop together
    result = wait_all(processes, logs, TIMEOUT_S)
    assert_launch_ok(result)
    saved = Checkpointer(checkpoint_dir(workdir)).steps()
    assert len(saved) == 1 and saved[0] < STEPS, saved
    assert "preempted" in open(logs[0]).read()
    rerun_and_compare(args, workdir, two_process_run, tmp_path)


def test_a_dead_peer_fails_the_survivor_within_bounded_time(tmp_path):
    args = TRAIN + ["--workdir", str(tmp_path / "run"), "--steps", "100000",
                    "--heartbeat-timeout", "5"]
    processes, logs = start_local(args, 2, devices_per_process=1, log_dir=str(tmp_path / "logs"))
    try:
        wait_for_checkpoint(str(tmp_path / "run"), processes, at_least=2)
        os.killpg(processes[1].pid, signal.SIGKILL)
        started = time.monotonic()
        code = processes[0].wait(timeout=60)
        assert code != 0 and time.monotonic() - started < 60
        assert "another task died" in open(logs[0]).read()
    finally:
        stop_all(processes)


def test_two_process_sampling_writes_the_same_files(two_process_run, tmp_path):
    sample = ["sample", "--workdir", two_process_run, "--num", "100", "--batch-size", "16",
              "--shard-size", "32"]
    assert_launch_ok(launch_local(sample + ["--out", str(tmp_path / "two")], 2, devices_per_process=2,
                                  timeout_s=TIMEOUT_S, log_dir=str(tmp_path / "logs-2")))
    # One process (this one, 2 of its devices): the same samples, to float tolerance (bitwise
    # equality holds within one device configuration; an 8-device host compiles differently).
    sample_to_disk(two_process_run, str(tmp_path / "one"), num=100, batch_size=16, shard_size=32,
                   num_devices=2, progress=False)
    two = read_manifest(str(tmp_path / "two"))
    assert [s["index"] for s in two["shards"]] == [0, 1, 2, 3]
    assert sum(s["num"] for s in two["shards"]) == 100
    x_two, y_two, _ = load_samples(str(tmp_path / "two"))
    x_one, y_one, _ = load_samples(str(tmp_path / "one"))
    np.testing.assert_array_equal(y_two, y_one)
    np.testing.assert_allclose(x_two, x_one, atol=1e-5)
    assert not [f for f in os.listdir(tmp_path / "two") if f.startswith("manifest.process")]
