"""The README's "What jsynth guarantees", one class of failure per test, through the command line.

Each bad input or fault must end with exit status 2, one message on stderr that names the path
or field (no traceback), and nothing of the user's lost or overwritten (file hashes before and
after). Runs in this process on the suite's 8 host devices. The tests that train are in the
full tier only (`pytest -m "not slow"` keeps its two-minute budget).
"""
import contextlib
import hashlib
import io
import json
import os
import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

from helpers import assert_trees_bitwise_equal, compilation_cache, corrupt_checkpoint  # noqa: F401  (fixture)
from jsynth.cli import main
from jsynth.shards import load_samples

TINY = ["--batch-size", "16", "--checkpoint-every", "2", "--set", "width=16", "--set", "latent_dim=8",
        "--set", "progress=false", "--set", "log_every=2", "--set", "sample_every=1000",
        "--set", "tensorboard=false"]


def run_cli(argv):
    """(exit status, stdout, stderr) of ``jsynth ARGV`` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main([str(a) for a in argv])
    return status, out.getvalue(), err.getvalue()


def refused(argv, *fragments):
    """Runs ``argv``, which must fail as a user error naming every fragment; returns stderr."""
    status, _, err = run_cli(argv)
    assert status == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err


def snapshot(directory) -> dict[str, str]:
    """{relative path: sha256} of every file under ``directory``."""
    found = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                found[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
    return found


def digits_npz(path, label_offset=100, images=None):
    """The bundled digits as uint8 in an npz, with class ids 100..109 (sparse ids)."""
    digits = load_digits()
    x = images if images is not None else (digits.images * (255 / 16)).round().astype(np.uint8)
    np.savez(path, x=x, y=digits.target + label_offset)
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A conditional MLP VAE trained for 4 steps on digits whose class ids are 100..109."""
    root = tmp_path_factory.mktemp("guarantees")
    data = digits_npz(root / "digits.npz")
    workdir = root / "run"
    argv = ["train", "--model", "mlpvae", "--conditional", "--data", f"npz:{data}", "--workdir", workdir,
            "--steps", "4"] + TINY
    status, _, err = run_cli(argv)
    assert status == 0, err
    return argv, data, workdir


# ---- labels are what the data says ------------------------------------------------------------

@pytest.mark.slow
def test_sparse_class_ids_come_back_as_the_datas_ids(run, tmp_path):
    _, _, workdir = run
    status, _, err = run_cli(["sample", "--workdir", workdir, "--num", "20", "--batch-size", "8",
                              "--out", tmp_path / "all"])
    assert status == 0, err
    _, y, manifest = load_samples(str(tmp_path / "all"))
    np.testing.assert_array_equal(y, 100 + np.arange(20) % 10)  # balanced, as the data's ids
    assert manifest["class_names"] == [str(i) for i in range(100, 110)]
    status, _, err = run_cli(["sample", "--workdir", workdir, "--num", "8", "--batch-size", "8",
                              "--out", tmp_path / "one", "--label", "105"])
    assert status == 0, err
    np.testing.assert_array_equal(load_samples(str(tmp_path / "one"))[1], np.full(8, 105))
    refused(["sample", "--workdir", workdir, "--num", "8", "--batch-size", "8", "--out", tmp_path / "bad",
             "--label", "5"], "--label 5 is not a class", "100, 101")


def test_a_huge_class_id_allocates_nothing_in_proportion(tmp_path):
    x = np.zeros((32, 8, 8), np.uint8)
    np.savez(tmp_path / "huge.npz", x=x, y=np.array([0] * 31 + [2**31 - 2]))
    status, out, err = run_cli(["train", "--model", "mlpvae", "--conditional", "--data", f"npz:{tmp_path}/huge.npz",
                                "--workdir", tmp_path / "run", "--dry-run"] + TINY)
    assert status == 0, err
    plan = json.loads(out)
    assert plan["num_classes"] == 2 and plan["parameters"]["params"] < 100_000


# ---- resume never makes a good run unusable -------------------------------------------------

@pytest.mark.slow
def test_a_refused_resume_touches_nothing_and_names_the_way_on(run):
    argv, _, workdir = run
    before = snapshot(workdir)
    err = refused(argv + ["--set", "learning_rate=0.0005"], str(workdir), "learning_rate: 0.001 in the workdir vs 0.0005",
                  "intact", "--allow-change learning_rate", "new --workdir")
    assert "move" not in err.lower()
    refused(argv + ["--set", "beta=0.5", "--allow-change", "width"], "--allow-change width", "learning_rate")
    assert snapshot(workdir) == before


@pytest.mark.slow
def test_changed_data_under_the_same_path_is_caught(run, tmp_path):
    argv, data, workdir = run
    before = snapshot(workdir)
    original = data.read_bytes()
    try:
        digits_npz(data, images=np.zeros((1797, 8, 8), np.uint8))  # same shape and classes, new content
        refused(argv + ["--steps", "6"], "changed since", str(workdir), "intact")
    finally:
        data.write_bytes(original)
    assert snapshot(workdir) == before


@pytest.mark.slow  # three short runs
def test_the_divergence_advice_is_accepted(tmp_path, run):
    _, data, _ = run
    workdir = tmp_path / "diverging"
    argv = ["train", "--model", "mlpvae", "--data", f"npz:{data}", "--workdir", workdir, "--steps", "8"] + TINY
    err = refused(argv + ["--set", "learning_rate=1e30"], "non-finite", str(workdir))
    advice = re.search(r"--set learning_rate=(\S+) --allow-change learning_rate", err)
    assert advice, err
    # The advice as given is accepted (it may diverge again at half of 1e30, but is not refused) ...
    status, _, err = run_cli(argv + ["--set", f"learning_rate={advice.group(1)}", "--allow-change", "learning_rate"])
    assert "different config" not in err
    # ... and with a learning rate that is really lower, the run goes on from its checkpoint.
    status, out, err = run_cli(argv + ["--set", "learning_rate=0.001", "--allow-change", "learning_rate"])
    assert status == 0, err
    assert json.loads((workdir / "config.json").read_text())["learning_rate"] == 0.001


# ---- quiet recovery -------------------------------------------------------------------------

@pytest.mark.slow
def test_a_damaged_checkpoint_costs_one_warning(run, tmp_path):
    argv, _, workdir = run
    import shutil
    copy = tmp_path / "copy"
    shutil.copytree(workdir, copy)
    corrupt_checkpoint(copy / "checkpoints", 4)
    status, _, err = run_cli([copy if a == workdir else a for a in argv])
    assert status == 0, err
    assert "Traceback" not in err and "Event loop" not in err, err
    assert [line for line in err.splitlines() if line.strip()] == [
        line for line in err.splitlines() if line.startswith("warning: checkpoint at step 4")]


# ---- the time limit -------------------------------------------------------------------------

@pytest.mark.slow  # three short runs
def test_a_time_limit_saves_and_a_larger_budget_continues_bitwise(run, tmp_path):
    _, data, _ = run
    from jsynth.checkpoint import Checkpointer

    def argv(workdir, *extra):
        return ["train", "--model", "mlpvae", "--data", f"npz:{data}", "--workdir", workdir] + TINY + list(extra)

    limited = tmp_path / "limited"
    status, out, err = run_cli(argv(limited, "--steps", "100000", "--time-limit", "1s"))
    assert status == 0 and "time limit reached" in out, err
    stopped = json.loads((limited / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    status, out, err = run_cli(argv(limited, "--steps", "100000", "--time-limit", "1s"))
    assert status == 0 and "already trained" in out, err
    total = stopped + 3
    assert run_cli(argv(limited, "--steps", total))[0] == 0  # no limit: continues to `total`
    assert run_cli(argv(tmp_path / "straight", "--steps", total))[0] == 0
    states = []
    for workdir in (limited, tmp_path / "straight"):
        checkpoints = Checkpointer(str(workdir / "checkpoints"))
        states.append(checkpoints.restore(total, None)[0])
        checkpoints.close()
    assert_trees_bitwise_equal(*states)


# ---- values are validated at the edge ---------------------------------------------------------

@pytest.mark.slow
def test_bad_values_name_the_flag_or_path(run, tmp_path):
    _, data, workdir = run
    refused(["train", "--model", "mlpvae", "--data", f"npz:{tmp_path}", "--workdir", tmp_path / "w"],
            str(tmp_path), "is a directory", "folder:")
    refused(["sample", "--workdir", workdir, "--num", "8", "--out", tmp_path / "o", "--shard-size", "0"],
            "--shard-size", "positive")
    refused(["sample", "--workdir", workdir, "--num", "8", "--out", tmp_path / "o", "--batch-size", "-8"],
            "--batch-size", "positive")
    refused(["eval", "--samples", tmp_path / "nothing", "--data", f"npz:{data}"], str(tmp_path / "nothing"))
    np.savez(tmp_path / "nan.npz", x=np.full((4, 8, 8), np.nan, np.float32))
    refused(["eval", "--samples", tmp_path / "nan.npz", "--data", f"npz:{data}"], str(tmp_path / "nan.npz"), "NaN")


@pytest.mark.slow  # trains the evaluation's feature network and classifiers
def test_eval_reads_its_own_png_output(run, tmp_path):
    _, data, workdir = run
    out = tmp_path / "png"
    assert run_cli(["sample", "--workdir", workdir, "--num", "64", "--batch-size", "16", "--out", out,
                    "--format", "png", "--shard-size", "32"])[0] == 0
    before = snapshot(out)
    status, _, err = run_cli(["eval", "--samples", out, "--data", f"npz:{data}", "--json", tmp_path / "e.json",
                              "--set", "utility_steps=20", "--set", "augment_fractions=", "--set",
                              f"cache_dir={tmp_path / 'cache'}", "--set", "report=false"])
    assert status == 0, err
    result = json.loads((tmp_path / "e.json").read_text())
    assert 0.0 <= result["label_agreement"] <= 1.0 and result["tstr_accuracy"] is not None
    assert snapshot(out) == before


def test_every_flag_a_message_suggests_exists():
    """A flag named anywhere in jsynth's source (error messages, help) is one the CLI accepts."""
    import argparse
    import pathlib
    from jsynth.cli import build_parser

    accepted = set()
    parsers = [build_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            accepted.update(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                parsers.extend(action.choices.values())
    foreign = {"--logdir"}  # tensorboard's own flag, in a docstring telling how to view the events
    source = pathlib.Path(__file__).parent.parent / "jsynth"
    named = {(flag, path.name) for path in source.rglob("*.py")
             for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*[a-z](?![\w])", path.read_text())}
    assert {(f, p) for f, p in named if f not in accepted | foreign} == set()
