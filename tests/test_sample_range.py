"""Job-array sampling: ``jsynth sample --range`` pieces and ``jsynth manifest merge``.

Three ranges merged equal one uninterrupted run byte for byte (shards and manifest), whether the
pieces share one directory or not; every way the pieces can fail to make one request is refused
with a message that names the fix, and a refused merge changes nothing.
"""
import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from helpers import compilation_cache  # noqa: F401  (fixture, autouse here)
from jsynth import configs
from jsynth.cli import build_parser, main
from jsynth.generate import sample_to_disk
from jsynth.manifest_merge import MergeError, merge_pieces
from jsynth.sample_range import RangeError, range_shards
from jsynth.train import loop

# Each test but the first needs a trained model (~15 s to train and compile): the slow tier.
slow = pytest.mark.slow

NUM, BATCH, SHARD = 40, 8, 16  # shards of 16, 16 and 8 samples
RANGES = ((0, 16), (16, 32), (32, 40))


def test_range_shards_are_whole_shards_of_the_request():
    assert range_shards(0, 16, num=40, shard_size=16) == range(0, 1)
    assert range_shards(16, 40, num=40, shard_size=16) == range(1, 3)  # STOP = num: the short last shard
    assert range_shards(0, 40, num=40, shard_size=16) == range(0, 3)
    for start, stop, hint in ((0, 20, "0:32"), (8, 16, "0:16"), (30, 40, "16:40"), (0, 41, "<= --num"),
                              (5, 5, "START < STOP")):
        with pytest.raises(RangeError, match=hint):
            range_shards(start, stop, num=40, shard_size=16)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("run") / "vae")
    loop.run(configs.tiny("mlpvae", conditional=True, steps=2, checkpoint_every=2), path)
    return path


def write(workdir, out, sample_range=None, **kwargs):
    options = dict(num=NUM, batch_size=BATCH, seed=11, shard_size=SHARD, progress=False)
    return sample_to_disk(workdir, str(out), sample_range=sample_range, **{**options, **kwargs})


@pytest.fixture(scope="module")
def complete(workdir, tmp_path_factory):
    out = tmp_path_factory.mktemp("samples") / "complete"
    write(workdir, out)
    return out


@pytest.fixture(scope="module")
def pieces(workdir, tmp_path_factory):
    """The three ranges, each in its own directory (as tasks on different machines might write)."""
    root = tmp_path_factory.mktemp("pieces")
    for start, stop in RANGES:
        write(workdir, root / f"task-{start}", (start, stop))
    return root


def snapshot(directory, skip_pieces=True):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))
            if not (skip_pieces and name.startswith("manifest.range-"))}


def copy_pieces(pieces, tmp_path, ranges=RANGES):
    dirs = []
    for start, _ in ranges:
        dirs.append(tmp_path / f"task-{start}")
        shutil.copytree(pieces / f"task-{start}", dirs[-1])
    return dirs


@slow
def test_three_ranges_in_one_directory_merge_to_the_uninterrupted_run(workdir, complete, tmp_path):
    shared = tmp_path / "shared"
    for start, stop in reversed(RANGES):  # the order tasks finish in does not matter
        piece = write(workdir, shared, (start, stop))
        assert piece["range"] == [start, stop] and len(piece["model_sha256"]) == 64
    assert sorted(os.listdir(shared)) == ["manifest.range-0-16.json", "manifest.range-16-32.json",
                                          "manifest.range-32-40.json", "part-00000.npz",
                                          "part-00001.npz", "part-00002.npz"]
    assert main(["manifest", "merge", str(shared)]) == 0
    assert snapshot(shared) == snapshot(complete)  # shards and manifest.json, byte for byte
    # A task rerun after the merge finds its shards done and writes nothing.
    before = os.stat(shared / "part-00001.npz").st_mtime_ns
    write(workdir, shared, (16, 32))
    assert os.stat(shared / "part-00001.npz").st_mtime_ns == before
    assert merge_pieces([str(shared)]) == json.loads((complete / "manifest.json").read_text())


@slow
def test_pieces_in_separate_directories_merge_into_out(pieces, complete, tmp_path):
    dirs = copy_pieces(pieces, tmp_path)
    merged = tmp_path / "merged"
    merge_pieces([str(d) for d in dirs], str(merged))
    assert snapshot(merged) == snapshot(complete)
    for d in dirs:  # nothing was moved out of the pieces
        assert len([n for n in os.listdir(d) if n.endswith(".npz")]) == 1


@slow
def test_ranges_must_fall_on_shard_boundaries(workdir, tmp_path):
    for bad, hint in (((0, 20), r"--range 0:32"), ((8, 16), r"--range 0:16"), ((32, 48), "<= --num"),
                      ((16, 16), "START < STOP")):
        with pytest.raises(RangeError, match=hint):
            write(workdir, tmp_path / "bad", bad)
    assert not os.path.exists(tmp_path / "bad") or not os.listdir(tmp_path / "bad")


@slow
def test_range_flag_on_the_command_line(workdir, tmp_path, capsys):
    out = str(tmp_path / "cli")
    args = ["sample", "--workdir", workdir, "--num", str(NUM), "--batch-size", str(BATCH),
            "--seed", "11", "--shard-size", str(SHARD), "--out", out]
    assert main(args + ["--range", "16:32"]) == 0
    assert "jsynth manifest merge" in capsys.readouterr().out
    assert main(args + ["--range", "3:7"]) == 2
    assert "shard boundaries" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # not START:STOP: a usage error
        main(args + ["--range", "16-32"])
    assert main(["manifest", "merge", out]) == 2  # a gap: samples 0..15 are in no piece
    assert "--range 0:16" in capsys.readouterr().err


def _edit(path, change):
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


@slow
@pytest.mark.parametrize("damage, message", [
    ("gap", r"samples 16\.\.31 are in no piece.*--range 16:32"),
    ("overlap", r"pieces overlap.*samples 0\.\.15"),
    ("seed", r"not one request: different --seed values"),
    ("model", r"not one request: different model weights"),
    ("step", r"not one request: different checkpoint steps"),
    ("tampered", r"does not match its sha256"),
    ("missing", r"listed in .* but missing"),
    ("incomplete", r"finished 0 of its 1 shards.*rerun that task"),
])
@slow
def test_a_bad_set_of_pieces_is_refused_and_nothing_changes(pieces, tmp_path, damage, message):
    dirs = copy_pieces(pieces, tmp_path)
    first, second, third = dirs
    if damage == "gap":
        dirs = [first, third]
    elif damage == "overlap":
        dirs = dirs + [tmp_path / "again"]
        shutil.copytree(first, dirs[-1])
    elif damage in ("seed", "model", "step"):
        field = {"seed": "seed", "model": "model_sha256", "step": "checkpoint_step"}[damage]
        _edit(second / "manifest.range-16-32.json", lambda m: m.update({field: 99}))
    elif damage == "tampered":
        data = bytearray((third / "part-00002.npz").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (third / "part-00002.npz").write_bytes(bytes(data))
    elif damage == "missing":
        os.remove(second / "part-00001.npz")
    elif damage == "incomplete":
        _edit(second / "manifest.range-16-32.json", lambda m: m.update(shards=[]))
    before = {d: snapshot(d, skip_pieces=False) for d in dirs}
    merged = tmp_path / "merged"
    with pytest.raises(MergeError, match=message):
        merge_pieces([str(d) for d in dirs], str(merged))
    assert not merged.exists()
    assert {d: snapshot(d, skip_pieces=False) for d in dirs} == before


@slow
def test_merge_never_replaces_a_file_it_did_not_write(pieces, tmp_path):
    dirs = copy_pieces(pieces, tmp_path)
    merged = tmp_path / "merged"
    merged.mkdir()
    (merged / "part-00001.npz").write_bytes(b"someone else's file")
    with pytest.raises(MergeError, match="exists and is not the shard"):
        merge_pieces([str(d) for d in dirs], str(merged))
    assert (merged / "part-00001.npz").read_bytes() == b"someone else's file"
    with pytest.raises(MergeError, match="holds no piece manifests"):
        merge_pieces([str(merged)])


@pytest.mark.parametrize("index_variable", ["SLURM_ARRAY_TASK_ID", "JOB_COMPLETION_INDEX"])
def test_the_readme_job_array_recipes_give_whole_adjacent_ranges(index_variable):
    """The README's scheduler scripts, run by bash with `jsynth` echoed: tasks 0..2 tile 0..3N."""
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md")).read()
    script = next(block for block in re.findall(r"```bash\n(.*?)```", readme, re.S)
                  if index_variable in block and "--range" in block)
    ranges = []
    for task in range(3):
        echoed = subprocess.run(["bash", "-c", script.replace("jsynth ", "echo ")], check=True, text=True,
                                capture_output=True, env={**os.environ, index_variable: str(task)}).stdout
        args = build_parser().parse_args(shlex.split(echoed))
        assert args.command == "sample"
        range_shards(*args.range, num=args.num, shard_size=10_000)  # whole default-size shards
        ranges.append(args.range)
    n = ranges[0][1]
    assert ranges == [(0, n), (n, 2 * n), (2 * n, 3 * n)]
