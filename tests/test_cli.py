"""The ``jsynth`` command line end to end, in process: train, --dry-run, sample, and bad input.

Every user error must exit with status 2 and one clear line on stderr, and must train nothing.
"""
import contextlib
import io
import json
import os

import numpy as np
import pytest
from PIL import Image

from helpers import compilation_cache  # noqa: F401  (fixture, autouse here)
from jsynth import configs
from jsynth.checkpoint import Checkpointer
from jsynth.cli import main
from jsynth.shards import load_samples, read_manifest

TINY = ["--steps", "2", "--batch-size", "16", "--checkpoint-every", "2", "--set", "latent_dim=8",
        "--set", "progress=false", "--set", "log_every=2", "--set", "sample_every=1000"]
RUNS = {"dcgan": ["--model", "dcgan", "--conditional", "--set", "width=4"],
        "mlpvae": ["--model", "mlpvae", "--set", "width=16"]}


def run_cli(argv):
    """(exit status, stdout, stderr) of ``jsynth ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(argv)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """{name: (workdir, stdout)} of `jsynth train` for a conditional DCGAN and an MLP VAE."""
    root = tmp_path_factory.mktemp("cli")
    runs = {}
    for name, args in RUNS.items():
        workdir = str(root / name)
        status, out, err = run_cli(["train", "--data", "digits", "--workdir", workdir] + args + TINY)
        assert status == 0, err
        runs[name] = (workdir, out)
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RUNS))
def test_train_writes_config_metrics_checkpoints_and_samples(trained, name):
    workdir, out = trained[name]
    assert workdir in out and "step 2" in out
    with open(os.path.join(workdir, "config.json")) as f:
        config = configs.from_json(f.read())
    assert config.model == name and config.steps == 2 and config.latent_dim == 8
    assert config.conditional == (name == "dcgan")
    assert config.learning_rate is not None and config.schedule_steps == 2  # resolved: concrete
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    assert [r["step"] for r in records] == [2]
    losses = {"d_loss", "g_loss"} if name == "dcgan" else {"loss", "recon", "kl"}
    assert {"step", "time", "steps_per_s"} | losses <= set(records[0])
    checkpoints = Checkpointer(os.path.join(workdir, "checkpoints"))
    assert checkpoints.steps() == [2]
    checkpoints.close()
    grids = os.listdir(os.path.join(workdir, "samples"))
    assert grids == ["step_0000002.png"]
    with Image.open(os.path.join(workdir, "samples", grids[0])) as image:
        assert image.format == "PNG" and min(image.size) >= 64


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    workdir = tmp_path / "dry"
    status, out, err = run_cli(["train", "--model", "convvae", "--conditional", "--workdir", str(workdir),
                                "--set", "width=4", "--dry-run"])
    assert status == 0, err
    plan = json.loads(out)
    assert plan["config"]["model"] == "convvae" and plan["config"]["width"] == 4
    assert plan["config"]["latent_dim"] == 20  # the model default, resolved
    assert plan["image_shape"] == [8, 8, 1] and plan["num_classes"] == 10
    assert plan["devices"] == 8 and plan["examples"] == 1797
    assert plan["parameters"]["params"] > 0
    assert not workdir.exists()


@pytest.mark.slow
def test_sample_npz_and_png(trained, tmp_path):
    workdir, _ = trained["dcgan"]
    out = str(tmp_path / "npz")
    status, stdout, err = run_cli(["sample", "--workdir", workdir, "--num", "20", "--out", out,
                                   "--batch-size", "8", "--seed", "3"])
    assert status == 0, err
    assert "wrote 20 samples" in stdout
    x, y, _ = load_samples(out)
    assert x.shape == (20, 8, 8, 1) and np.all((x >= 0) & (x <= 1))
    np.testing.assert_array_equal(y, np.arange(20) % 10)
    png = str(tmp_path / "png")
    status, _, err = run_cli(["sample", "--workdir", workdir, "--num", "20", "--out", png,
                              "--batch-size", "8", "--format", "png", "--label", "7"])
    assert status == 0, err
    manifest = read_manifest(png)
    assert manifest["num"] == 20 and manifest["label"] == 7
    files = sorted(f for f in os.listdir(png) if f.endswith(".png"))
    assert files == [e["file"] for e in manifest["shards"]] and files
    assert all(label == 7 for e in manifest["shards"] for label in e["labels"])
    with Image.open(os.path.join(png, files[0])) as image:
        assert image.format == "PNG"


def assert_user_error(argv, *fragments):
    status, out, err = run_cli(argv)
    assert status == 2, (out, err)
    assert err.startswith(f"jsynth {argv[0]}: error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


@pytest.mark.slow
def test_label_on_an_unconditional_model_is_an_error(trained, tmp_path):
    workdir, _ = trained["mlpvae"]
    out = tmp_path / "labelled"
    assert_user_error(["sample", "--workdir", workdir, "--num", "8", "--out", str(out), "--batch-size", "8",
                       "--label", "3"], "--label needs a conditional model")
    assert not out.exists() or not any(f.startswith("part-") for f in os.listdir(out))


@pytest.mark.parametrize("args, fragments", [
    (["--model", "gan9"], ["model='gan9'", "dcgan", "mlpvae"]),
    (["--model", "dcgan", "--set", "widht=4"], ["unknown --set key 'widht'", "width"]),
    (["--model", "dcgan", "--set", "width=four"], ["width", "expected an int"]),
    (["--model", "dcgan", "--set", "b1=1.0"], ["b1=1.0", "[0, 1)"]),
    (["--model", "dcgan", "--set", "b2=-0.1"], ["b2=-0.1", "[0, 1)"]),
    (["--model", "dcgan", "--set", "weight_decay=-1"], ["weight_decay=-1.0", "non-negative"]),
    (["--model", "dcgan", "--set", "warmup_steps=5"], ["warmup_steps=5", "at most steps=2"]),
    (["--model", "dcgan", "--batch-size", "0"], ["batch_size=0", "positive"]),
    (["--model", "dcgan", "--set", "steps=30"], ["--steps 2 and --set steps=30 disagree"]),
    (["--model", "dcgan", "--set", "model=mlpvae"], ["--model dcgan and --set model=mlpvae disagree"]),
    (["--model", "dcgan", "--set", "width"], ["KEY=VALUE"]),
    (["--model", "mlpvae", "--data", "npz:{tmp}/missing.npz"], ["missing.npz"]),
    (["--model", "mlpvae", "--data", "mnist:{tmp}/nothing-here"], ["nothing-here"]),
    (["--model", "mlpvae", "--data", "imagenet"], ["Unknown data spec", "digits"]),
    (["--model", "mlpvae", "--batch-size", "12"], ["batch size 12 does not divide over 8 devices",
                                                   "multiple of 8"]),
], ids=["unknown-model", "bad-set-key", "bad-set-value", "b1", "b2", "weight-decay", "warmup-after-end",
        "batch-size-0", "flag-and-set-disagree", "model-and-set-disagree", "set-without-value", "missing-npz",
        "missing-mnist-dir", "unknown-data", "batch-vs-devices"])
def test_bad_train_inputs_exit_2_with_a_clear_message(tmp_path, args, fragments):
    workdir = tmp_path / "run"
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert_user_error(["train", "--workdir", str(workdir), "--steps", "2"] + args, *fragments)
    assert not (workdir / "checkpoints").exists()


@pytest.mark.slow  # the quick set checks the refusal in test_resume
def test_a_workdir_of_another_config_is_refused(trained):
    workdir, _ = trained["mlpvae"]
    before = sorted(os.listdir(os.path.join(workdir, "checkpoints")))
    assert_user_error(["train", "--data", "digits", "--workdir", workdir] + RUNS["mlpvae"] + TINY +
                      ["--set", "learning_rate=0.5"], "different config", "learning_rate")
    assert sorted(os.listdir(os.path.join(workdir, "checkpoints"))) == before


def test_a_file_where_the_workdir_should_be_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert_user_error(["train", "--model", "mlpvae", "--data", "digits", "--steps", "2", "--batch-size", "16",
                       "--workdir", str(blocker / "run")], str(blocker / "run"), "Not a directory")
    assert blocker.read_text() == "not a directory"


@pytest.mark.slow
def test_a_second_trainer_of_a_workdir_is_refused(tmp_path):
    from jsynth.workdir import one_trainer

    workdir = tmp_path / "run"
    argv = ["train", "--model", "mlpvae", "--steps", "2", "--batch-size", "16", "--workdir", str(workdir)]
    with one_trainer(str(workdir)):  # as a running `jsynth train` holds it
        assert_user_error(argv, f"{workdir} is being trained by pid {os.getpid()}", "one `jsynth train` per workdir")
        assert sorted(os.listdir(workdir)) == ["train.lock"]  # nothing of the run was touched
    status, _, err = run_cli(argv)  # released on exit: the workdir trains
    assert status == 0, err


def test_sampling_a_directory_without_a_run_is_a_user_error(tmp_path):
    assert_user_error(["sample", "--workdir", str(tmp_path / "nothing"), "--num", "8",
                       "--out", str(tmp_path / "out")], "is not a jsynth run", "config.json")


def test_argument_errors_exit_2():
    with pytest.raises(SystemExit) as raised, contextlib.redirect_stderr(io.StringIO()) as err:
        main(["train", "--model", "dcgan"])  # no --workdir
    assert raised.value.code == 2
    assert "--workdir" in err.getvalue()


def _tensorboard_scalars(logdir: str, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every ``tag`` scalar in the event files under ``logdir`` (TFRecord framing:
    8-byte length, 4-byte CRC, the Event proto, 4-byte CRC)."""
    import struct
    from tensorboardX.proto import event_pb2

    found = []
    for name in sorted(os.listdir(logdir)):
        data = open(os.path.join(logdir, name), "rb").read()
        position = 0
        while position < len(data):
            (length,) = struct.unpack("<Q", data[position:position + 8])
            event = event_pb2.Event.FromString(data[position + 12:position + 12 + length])
            position += 12 + length + 4
            found += [(event.step, value.simple_value) for value in event.summary.value if value.tag == tag]
    return found


@pytest.mark.slow
def test_training_writes_tensorboard_events_unless_switched_off(tmp_path):
    on, off = str(tmp_path / "on"), str(tmp_path / "off")
    args = TINY + ["--steps", "4"]
    assert main(["train", "--model", "mlpgan", "--workdir", on] + args) == 0
    assert main(["train", "--model", "mlpgan", "--workdir", off] + args + ["--set", "tensorboard=false"]) == 0
    logged = [json.loads(line) for line in open(os.path.join(on, "metrics.jsonl"))]
    scalars = _tensorboard_scalars(os.path.join(on, "tensorboard"), "d_loss")
    assert [step for step, _ in scalars] == [r["step"] for r in logged] == [2, 4]
    np.testing.assert_allclose([v for _, v in scalars], [r["d_loss"] for r in logged], rtol=1e-6)
    assert not os.path.exists(os.path.join(off, "tensorboard"))
