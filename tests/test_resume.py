"""Resuming runs of jsynth.train.loop.run: interrupted == uninterrupted, bitwise.

Covers a run stopped at step K and continued to N (1 and 8 devices), a real ``kill -9`` of a
``jsynth train`` process (the one test here that needs a subprocess), a workdir of another config,
diverging losses, and metrics.jsonl across resumes.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from helpers import (assert_trees_bitwise_equal, cache_env, compilation_cache,  # noqa: F401
                     corrupt_checkpoint, host)
from jsynth import configs, data as jdata
from jsynth import workdir as wd
from jsynth.checkpoint import Checkpointer
from jsynth.train import loop

# Orbax's reader threads complain after a failed read of a damaged checkpoint; harmless here.
pytestmark = [pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
              pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")]

STEPS, STOP_AT = 6, 3
# (model, conditional, devices): a conditional VAE on 1 device, a conditional DCGAN (BatchNorm,
# EMA, two optimisers) on 8.
RUNS = {"vae-1dev": ("mlpvae", True, 1), "dcgan-8dev": ("dcgan", True, 8)}


@pytest.fixture(scope="module")
def digits():
    return jdata.load("digits")


def config_for(name, **changes):
    model, conditional, devices = RUNS[name]
    fields = dict(conditional=conditional, num_devices=devices, steps=STEPS, checkpoint_every=3,
                  log_every=2)
    return configs.tiny(model, **{**fields, **changes})


def saved_state(workdir, step=None):
    """The state saved in ``workdir`` at ``step`` (default: the latest), as numpy arrays."""
    setup = loop.prepare(wd.read_config(workdir))
    checkpoints = Checkpointer(wd.checkpoint_dir(workdir))
    step = step or checkpoints.latest_step()
    state, _ = checkpoints.restore(step, loop.abstract_state(setup))
    checkpoints.close()
    return step, host(state)


def read_metrics(workdir):
    with open(wd.metrics_path(workdir)) as f:
        return [json.loads(line) for line in f]


def assert_metrics_well_formed(records, loss_keys):
    steps = [r["step"] for r in records]
    assert steps == sorted(set(steps)), f"duplicate or unordered steps: {steps}"
    for record in records:
        assert {"step", "time", "steps_per_s", *loss_keys} <= set(record), record
        assert all(np.isfinite(record[k]) for k in loss_keys) and record["steps_per_s"] > 0


class Resumed:
    """One config run to N uninterrupted, and run to K then (a second ``run``) to N."""

    def __init__(self, name, root, dataset):
        self.name = name
        self.straight, self.resumed = str(root / "straight"), str(root / "resumed")
        self.final = host(loop.run(config_for(name), self.straight, dataset=dataset))
        self.first = host(loop.run(config_for(name, steps=STOP_AT), self.resumed, dataset=dataset))
        self.metrics_after_first = read_metrics(self.resumed)
        self.final_resumed = host(loop.run(config_for(name), self.resumed, dataset=dataset))


# The 8-device DCGAN run is in the full run; the 1-device VAE in the quick set too.
@pytest.fixture(scope="module", params=[pytest.param(name, marks=pytest.mark.slow) if name == "dcgan-8dev" else name
                                       for name in sorted(RUNS)])
def resumed(request, tmp_path_factory, digits):
    return Resumed(request.param, tmp_path_factory.mktemp(request.param), digits)


@pytest.mark.slow
def test_stopped_and_continued_run_is_bitwise_identical(resumed):
    assert int(resumed.first.step) == STOP_AT
    assert int(resumed.final.step) == int(resumed.final_resumed.step) == STEPS
    assert_trees_bitwise_equal(resumed.final_resumed, resumed.final)
    # ... and so are the checkpoints on disk.
    step, straight = saved_state(resumed.straight)
    assert step == STEPS
    assert_trees_bitwise_equal(straight, resumed.final)
    assert_trees_bitwise_equal(saved_state(resumed.resumed)[1], resumed.final)


def test_continuing_a_finished_run_to_more_steps(resumed):
    checkpoints = Checkpointer(wd.checkpoint_dir(resumed.resumed))
    assert checkpoints.steps() == [3, 6]
    checkpoints.close()
    assert json.loads(open(wd.config_path(resumed.resumed)).read())["steps"] == STEPS
    # The first run logged steps 2 and 3 (its last); the continuation added 4 and 6, no repeats.
    assert [r["step"] for r in resumed.metrics_after_first] == [2, 3]
    model = RUNS[resumed.name][0]
    losses = ("loss", "recon", "kl") if model == "mlpvae" else ("d_loss", "g_loss")
    records = read_metrics(resumed.resumed)
    assert [r["step"] for r in records] == [2, 3, 4, 6]
    assert_metrics_well_formed(records, losses)


def test_rerunning_a_finished_run_trains_nothing(resumed, digits):
    before = read_metrics(resumed.resumed)
    state = loop.run(config_for(resumed.name), resumed.resumed, dataset=digits)
    assert_trees_bitwise_equal(state, resumed.final)
    assert read_metrics(resumed.resumed) == before


def test_a_run_resumes_past_a_damaged_latest_checkpoint(resumed, digits, tmp_path, capsys):
    workdir = str(tmp_path / "damaged")
    shutil.copytree(resumed.straight, workdir)
    corrupt_checkpoint(wd.checkpoint_dir(workdir), STEPS)
    state = loop.run(config_for(resumed.name), workdir, dataset=digits)  # from step 3, saving 6 again
    assert f"checkpoint at step {STEPS}" in capsys.readouterr().err
    assert_trees_bitwise_equal(state, resumed.final)
    assert_trees_bitwise_equal(saved_state(workdir)[1], resumed.final)
    assert [r["step"] for r in read_metrics(workdir)] == [2, 4, 6]


def test_a_workdir_of_another_config_is_refused(resumed, digits):
    other = config_for(resumed.name, learning_rate=0.123)
    with pytest.raises(wd.WorkdirError, match=r"different config.*learning_rate"):
        loop.run(other, resumed.resumed, dataset=digits)
    with open(wd.config_path(resumed.resumed)) as f:
        assert json.load(f)["learning_rate"] != 0.123  # the refused run changed nothing


def test_non_finite_losses_stop_the_run_and_keep_the_earlier_checkpoint(tmp_path, digits):
    config = configs.tiny("mlpvae", conditional=True, learning_rate=1e30, steps=6, checkpoint_every=1,
                          log_every=1, num_devices=1)
    with pytest.raises(loop.NonFiniteLossError) as raised:
        loop.run(config, str(tmp_path), dataset=digits)
    message = str(raised.value)
    match = re.search(r"between step (\d+) and step (\d+).*last good checkpoint \(step (\d+)\)", message)
    assert match, message
    first, last, kept = map(int, match.groups())
    assert 1 <= first <= last < 6 and kept == first - 1 >= 1
    assert "learning_rate" in message
    checkpoints = Checkpointer(wd.checkpoint_dir(str(tmp_path)))
    assert checkpoints.latest_step() == kept  # nothing was saved from the diverged steps
    checkpoints.close()
    assert max(r["step"] for r in read_metrics(str(tmp_path))) == kept


# ---- a real kill -9 ------------------------------------------------------------------------

KILL_STEPS = 24
TRAIN_ARGS = ["train", "--model", "mlpvae", "--steps", str(KILL_STEPS), "--batch-size", "16",
              "--checkpoint-every", "2", "--set", "width=16", "--set", "latent_dim=8",
              "--set", "progress=false", "--set", "log_every=2", "--set", "sample_every=1000"]
PROCESS_TIMEOUT_S = 240


def finished_checkpoints(workdir):
    directory = wd.checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        return []
    return sorted(int(d) for d in os.listdir(directory) if d.isdigit())


@pytest.mark.slow  # two `jsynth train` subprocesses and a SIGKILL (~12 s)
def test_killed_run_resumes_to_the_same_parameters(tmp_path, digits, compilation_cache):
    workdir = str(tmp_path / "killed")
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu",
               **cache_env(compilation_cache))
    command = [sys.executable, "-m", "jsynth.cli"] + TRAIN_ARGS + ["--workdir", workdir]

    # The same config in this process, never interrupted (8 devices, as the subprocess has).
    reference = configs.tiny("mlpvae", steps=KILL_STEPS, checkpoint_every=2, sample_every=1000)
    straight = host(loop.run(reference, str(tmp_path / "straight"), dataset=digits))

    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        deadline = time.monotonic() + PROCESS_TIMEOUT_S
        while not finished_checkpoints(workdir) and process.poll() is None:
            assert time.monotonic() < deadline, "no checkpoint appeared in time"
            time.sleep(0.01)
        os.kill(process.pid, signal.SIGKILL)
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == -signal.SIGKILL, f"the run ended before the kill:\n{output[-3000:]}"
    at_kill = finished_checkpoints(workdir)
    assert at_kill and at_kill[-1] < KILL_STEPS, at_kill

    rerun = subprocess.run(command, env=env, capture_output=True, text=True, timeout=PROCESS_TIMEOUT_S)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    step, final = saved_state(workdir)
    assert step == KILL_STEPS
    assert_trees_bitwise_equal(final, straight)
    records = read_metrics(workdir)
    assert [r["step"] for r in records] == list(range(2, KILL_STEPS + 1, 2))
    assert_metrics_well_formed(records, ("loss", "recon", "kl"))


def test_a_continued_run_keeps_the_decay_length_of_its_first_run(tmp_path):
    first = configs.resolve(configs.tiny("mlpvae", schedule="cosine", steps=3))
    wd.write_config(str(tmp_path), first)
    longer = wd.keep_schedule(str(tmp_path), configs.tiny("mlpvae", schedule="cosine", steps=9))
    assert configs.resolve(longer).schedule_steps == 3
    assert configs.differences(first, configs.resolve(longer)) == {}
    explicit = configs.tiny("mlpvae", schedule="cosine", steps=9, schedule_steps=9)
    assert wd.keep_schedule(str(tmp_path), explicit).schedule_steps == 9
    assert wd.keep_schedule(str(tmp_path / "new"), configs.tiny("mlpvae")).schedule_steps is None
