"""``jsynth manifest merge``: the pieces of a job-array request checked and joined into one manifest.

Each piece is a ``manifest.range-START-STOP.json`` that ``jsynth sample --range`` wrote
(``jsynth.sample_range``). Before anything is written, every piece must be complete, all must
be one request (same model weights, checkpoint step, seed, num, shard size, format, labels...),
their ranges must neither overlap nor leave a gap, and every shard must match its sha256. The
result is ``OUT/manifest.json`` exactly as one uninterrupted ``jsynth sample`` run writes it,
beside the same shard files; the pieces' manifests are kept (a task rerun after the merge finds
its shards done). Pieces in other directories have their shards hard-linked (or, across file
systems, copied) into OUT; nothing is moved or replaced, so a failed merge loses nothing.
"""
from __future__ import annotations

import json
import os
import shutil

from jsynth.atomic import write_atomic
from jsynth.sample_range import PIECE_FIELDS, PIECE_PATTERN, range_shards
from jsynth.shards import MANIFEST, SampleOutputError, manifest_shards, read_manifest, sha256_file

# How a difference in these fields is explained; any other field is named as it is.
_WHY = {"model_sha256": "different model weights (sample every piece from the same workdir and checkpoint)",
        "checkpoint_step": "different checkpoint steps (sample every piece from the same checkpoint)",
        "seed": "different --seed values", "num": "different --num values"}


class MergeError(SampleOutputError):
    """Pieces that do not make one request; the message names the piece and the fix."""


class _Piece:
    def __init__(self, directory: str, name: str, manifest: dict):
        self.directory, self.name, self.manifest = directory, name, manifest
        self.start, self.stop = manifest["range"]
        self.where = os.path.join(directory, name)

    def request(self) -> dict:
        return {k: v for k, v in self.manifest.items() if k not in PIECE_FIELDS + ("shards",)}


def _read_pieces(directory: str) -> list[_Piece]:
    if not os.path.isdir(directory):
        raise MergeError(f"{directory} is not a directory; name the --out directories of the "
                         "`jsynth sample --range` tasks")
    names = sorted(n for n in os.listdir(directory) if PIECE_PATTERN.match(n))
    if not names:
        raise MergeError(f"{directory} holds no piece manifests (manifest.range-START-STOP.json): "
                         "it was not written by `jsynth sample --range`")
    pieces = []
    for name in names:
        manifest = read_manifest(directory, name)
        where = os.path.join(directory, name)
        start, stop = (int(g) for g in PIECE_PATTERN.match(name).groups())
        if manifest is None or manifest.get("range") != [start, stop]:
            raise MergeError(f"{where} is damaged (unreadable, or its range is not {start}:{stop}); "
                             f"remove it and rerun that task (`jsynth sample ... --range {start}:{stop}`)")
        manifest_shards(directory, manifest, name)  # entries must be plain files inside the directory
        pieces.append(_Piece(directory, name, manifest))
    return pieces


def _check_complete(piece: _Piece) -> None:
    m = piece.manifest
    try:
        expected = range_shards(piece.start, piece.stop, num=m["num"], shard_size=m["shard_size"])
    except (KeyError, TypeError, ValueError) as error:
        raise MergeError(f"{piece.where} is not a piece of a valid request ({error}); rerun that task") from None
    listed = [e["index"] for e in m["shards"]]
    if sorted(listed) != list(expected):
        missing = len(set(expected) - set(listed))
        stray = sorted(set(listed) - set(expected))
        if stray:
            raise MergeError(f"{piece.where} lists shards {stray} outside its range {piece.start}:{piece.stop}; "
                             "it was edited or damaged: remove it and rerun that task")
        raise MergeError(f"piece {piece.start}:{piece.stop} ({piece.where}) has finished "
                         f"{len(expected) - missing} of its {len(expected)} shards: rerun that task "
                         f"(`jsynth sample ... --range {piece.start}:{piece.stop}`; it keeps the "
                         "finished shards), then merge again")
    for entry in m["shards"]:
        size = min(m["shard_size"], m["num"] - entry["index"] * m["shard_size"])
        if entry.get("num") != size:
            raise MergeError(f"{piece.where}: shard {entry['file']} says {entry.get('num')} samples, "
                             f"its place in the request holds {size}; the manifest is damaged")


def _check_same_request(pieces: list[_Piece]) -> None:
    first = pieces[0]
    reference = dict(first.request(), model_sha256=first.manifest.get("model_sha256"))
    for piece in pieces[1:]:
        other = dict(piece.request(), model_sha256=piece.manifest.get("model_sha256"))
        fields = sorted(set(reference) | set(other), key=lambda k: (k not in _WHY, k))
        for field in fields:
            if reference.get(field) != other.get(field):
                why = _WHY.get(field, f"a different {field}")
                raise MergeError(f"{first.where} and {piece.where} are not one request: {why} "
                                 f"({field}: {reference.get(field)!r} vs {other.get(field)!r})")


def _check_coverage(pieces: list[_Piece], num: int) -> None:
    position, previous = 0, None
    for piece in sorted(pieces, key=lambda p: (p.start, p.stop)):
        if piece.start < position:
            raise MergeError(f"pieces overlap: {previous.where} ({previous.start}:{previous.stop}) and "
                             f"{piece.where} ({piece.start}:{piece.stop}) both hold samples "
                             f"{piece.start}..{min(position, piece.stop) - 1}; name only one of them")
        if piece.start > position:
            raise MergeError(f"samples {position}..{piece.start - 1} are in no piece: run "
                             f"`jsynth sample ... --range {position}:{piece.start}` (the same "
                             "workdir, --num, --seed, --batch-size and --shard-size), then merge again")
        position, previous = piece.stop, piece
    if position < num:
        raise MergeError(f"samples {position}..{num - 1} are in no piece: run `jsynth sample ... "
                         f"--range {position}:{num}`, then merge again")


def _check_shard_files(piece: _Piece) -> None:
    for entry in piece.manifest["shards"]:
        path = os.path.join(piece.directory, entry["file"])
        if not os.path.isfile(path):
            raise MergeError(f"{path} is listed in {piece.where} but missing; rerun that task "
                             f"(`jsynth sample ... --range {piece.start}:{piece.stop}`) to write it")
        if sha256_file(path) != entry["sha256"]:
            raise MergeError(f"{path} does not match its sha256 in {piece.where}: it changed after it "
                             f"was written; rerun that task (`--range {piece.start}:{piece.stop}`) to rewrite it")


def _place(source: str, target: str, sha256: str) -> None:
    """Puts a shard at ``target`` without moving or replacing anything: a hard link, else a copy."""
    if os.path.lexists(target):
        if os.path.isfile(target) and sha256_file(target) == sha256:
            return  # already there (an earlier merge)
        raise MergeError(f"{target} exists and is not the shard {source}; merge into another --out "
                         "(nothing was replaced)")
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: copy under a temporary name
        temporary = f"{target}.tmp-{os.getpid()}"
        shutil.copyfile(source, temporary)
        os.replace(temporary, target)


def merge_pieces(directories: list[str], out: str | None = None) -> dict:
    """Checks the pieces in ``directories`` and writes ``OUT/manifest.json``; returns it.

    Args:
      directories: the ``--out`` directories of the ``jsynth sample --range`` tasks (one
        shared directory, or several).
      out: where the merged set goes (default: the first directory); shards of pieces elsewhere
        are hard-linked or copied there.

    Raises:
      MergeError: a piece incomplete or damaged, pieces of different requests, overlapping
        ranges, a gap, a shard whose sha256 does not match, or a file in the way in ``out``.
    """
    if not directories:
        raise MergeError("name at least one directory written by `jsynth sample --range`")
    unique = list(dict.fromkeys(os.path.realpath(d) for d in directories))
    pieces = [piece for directory in unique for piece in _read_pieces(directory)]
    for piece in pieces:
        _check_complete(piece)
    _check_same_request(pieces)
    _check_coverage(pieces, pieces[0].manifest["num"])
    for piece in pieces:
        _check_shard_files(piece)
    out = os.path.realpath(out or unique[0])
    merged = dict(pieces[0].request(), shards=sorted((e for p in pieces for e in p.manifest["shards"]),
                                                      key=lambda e: e["index"]))
    existing = read_manifest(out)
    if existing is not None and {k: v for k, v in existing.items() if k != "shards"} != pieces[0].request():
        raise MergeError(f"{out}/{MANIFEST} belongs to a different request; merge into another --out "
                         "(nothing was replaced)")
    os.makedirs(out, exist_ok=True)
    for piece in pieces:
        if os.path.realpath(piece.directory) != out:
            for entry in piece.manifest["shards"]:
                _place(os.path.join(piece.directory, entry["file"]), os.path.join(out, entry["file"]),
                       entry["sha256"])
    write_atomic(os.path.join(out, MANIFEST), json.dumps(merged, indent=1))
    return merged
