"""Streams samples to disk as shards plus a manifest (the README's Files section: a contract other tools read).

OUT/part-00000.npz ...   "x" float32 NHWC in [0, 1], "y" int32 labels for conditional models
OUT/manifest.json        {"num", "seed", "checkpoint_step", "shards": [{"file", "num", "sha256"}], ...}

A shard is written to a temporary name, renamed when complete, and only then entered in the
manifest (itself replaced atomically). An interrupted request started again with the same
arguments keeps the finished shards (their sha256 checked) and writes only the rest; because
sample i depends only on (seed, i) and shards start on chunk boundaries, the result is the same
files as an uninterrupted run. Memory is bounded by one shard, whatever ``num`` is.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from typing import Callable, Iterator

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from jsynth.atomic import write_atomic
from jsynth.errors import UserError
from jsynth.images import grid, tiles
from jsynth.sampling import Chunk

FORMATS = ("npz", "png")
MANIFEST = "manifest.json"


class SampleOutputError(UserError, ValueError):
    """An output directory that cannot take this request; the message says what to do."""


def shard_name(index: int, fmt: str) -> str:
    return f"part-{index:05d}.{fmt}"


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_manifest(out_dir: str, name: str = MANIFEST) -> dict | None:
    path = os.path.join(out_dir, name)
    if not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        return None  # a manifest is replaced atomically; an unreadable one is treated as absent


def manifest_shards(out_dir: str, manifest: dict, name: str = MANIFEST) -> list[dict]:
    """The manifest's shard entries, checked: each names a plain file inside ``out_dir``.

    A manifest is read, never trusted: an entry whose ``file`` is absolute or leaves the
    directory (``..``, a separator) would make ``sample`` or ``eval`` read or rewrite a file
    elsewhere.

    Raises:
      SampleOutputError: no ``shards`` list, or an entry that is malformed or points elsewhere.
    """
    where = os.path.join(out_dir, name)
    shards = manifest.get("shards") if isinstance(manifest, dict) else None
    if not isinstance(shards, list):
        raise SampleOutputError(f"{where} has no 'shards' list: it is damaged or was not written by "
                                "jsynth sample; remove it (and rerun `jsynth sample` to rewrite the shards)")
    for entry in shards:
        file = entry.get("file") if isinstance(entry, dict) else None
        if (not isinstance(file, str) or not file or file in (".", "..") or os.path.isabs(file)
                or os.path.basename(file) != file or "/" in file or "\\" in file
                or not isinstance(entry.get("sha256"), str) or not isinstance(entry.get("index"), int)):
            raise SampleOutputError(f"{where} lists a shard {entry!r} that is not a file name inside {out_dir} "
                                    "with an index and a sha256; the manifest was edited or damaged, "
                                    "so nothing is read from it")
    return shards


def _write_manifest(out_dir: str, manifest: dict, name: str = MANIFEST) -> None:
    write_atomic(os.path.join(out_dir, name), json.dumps(manifest, indent=1))


def partial_manifest_name(process_index: int) -> str:
    """Where process i of a multi-process request lists the shards it has finished."""
    return f"manifest.process-{process_index:03d}.json"


def merge_manifests(out_dir: str, process_count: int) -> dict:
    """Combines the processes' partial manifests into ``manifest.json`` (run by process 0, after
    every process has finished); the partial files are then removed."""
    parts = [read_manifest(out_dir, partial_manifest_name(i)) for i in range(process_count)]
    missing = [i for i, part in enumerate(parts) if part is None]
    if missing:
        raise SampleOutputError(f"processes {missing} left no manifest in {out_dir}; rerun the "
                                "same command to finish their shards")
    merged = dict(parts[0], shards=sorted((e for part in parts for e in part["shards"]),
                                          key=lambda e: e["index"]))
    _write_manifest(out_dir, merged)
    for i in range(process_count):
        os.remove(os.path.join(out_dir, partial_manifest_name(i)))
    return merged


def _savez_reproducible(buffer, arrays: dict) -> None:
    """``np.savez`` with a fixed timestamp: the same samples always give the same bytes (sha256)."""
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(array), allow_pickle=False)


def _encode(images: np.ndarray, labels: np.ndarray | None, fmt: str) -> bytes:
    buffer = io.BytesIO()
    if fmt == "npz":
        arrays = {"x": images.astype(np.float32)}
        if labels is not None:
            arrays["y"] = labels.astype(np.int32)
        _savez_reproducible(buffer, arrays)
    else:
        pixels = grid(images, pad=0)
        Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _finished_shards(out_dir: str, manifest: dict | None, request: dict) -> dict[int, dict]:
    """Shards of an earlier run of the same request that are still intact on disk."""
    if manifest is None:
        return {}
    mismatched = {k: (manifest.get(k), v) for k, v in request.items() if manifest.get(k) != v}
    if mismatched:
        listing = ", ".join(f"{k}: {a!r} there vs {b!r} now" for k, (a, b) in sorted(mismatched.items()))
        raise SampleOutputError(f"{out_dir} holds samples of a different request ({listing}); use "
                                "another --out, or delete that directory to replace them")
    kept = {}
    for entry in manifest_shards(out_dir, manifest):
        path = os.path.join(out_dir, entry["file"])
        if os.path.exists(path) and sha256_file(path) == entry["sha256"]:
            kept[entry["index"]] = entry
    return kept


def write_samples(out_dir: str, chunks: Callable[[int, int], Iterator[Chunk]], *, num: int,
                  shard_size: int, request: dict, fmt: str = "npz", shard_indices=None,
                  manifest_name: str = MANIFEST, progress: bool = True,
                  encode: Callable[[np.ndarray, np.ndarray | None], bytes] | None = None) -> dict:
    """Writes samples 0..num-1 as shards of ``shard_size`` and returns the manifest.

    Args:
      chunks: ``chunks(start, stop)`` yields the samples start..stop-1 in order (the sampling core).
      request: what identifies the request (num, seed, checkpoint_step, ...); stored in the
        manifest and compared on restart.
      shard_indices: the shards this process writes (default: all); a multi-process run splits
        them, each process listing its own in ``manifest_name`` (see ``merge_manifests``).
      encode: ``encode(samples, labels) -> bytes``, a shard's file in ``fmt`` (default: the
        npz/png of images); how other kinds of samples are written (tables: ``jsynth.table_sampling``).
    """
    if fmt not in FORMATS and encode is None:
        raise SampleOutputError(f"format must be one of {FORMATS}, got {fmt!r}")
    if num <= 0 or shard_size <= 0:
        raise SampleOutputError(f"num and shard size must be positive, got {num} and {shard_size}")
    os.makedirs(out_dir, exist_ok=True)
    request = dict(request, num=num, shard_size=shard_size, format=fmt)
    earlier = read_manifest(out_dir, manifest_name) or read_manifest(out_dir)
    finished = _finished_shards(out_dir, earlier, request)
    count = -(-num // shard_size)
    mine = range(count) if shard_indices is None else shard_indices
    if earlier is None:  # no manifest: a shard-named file here was not written by jsynth sample
        theirs = [shard_name(i, fmt) for i in mine if os.path.lexists(os.path.join(out_dir, shard_name(i, fmt)))]
        if theirs:
            raise SampleOutputError(f"{out_dir} holds {', '.join(theirs[:3])}{' ...' if len(theirs) > 3 else ''} "
                                    f"but no {MANIFEST}: files jsynth sample did not write, which it will not "
                                    "replace. Use another --out (nothing was changed)")
    finished = {i: entry for i, entry in finished.items() if i in mine}
    todo = [i for i in mine if i not in finished]
    manifest = dict(request, shards=sorted(finished.values(), key=lambda e: e["index"]))
    _write_manifest(out_dir, manifest, manifest_name)
    bar = tqdm(total=sum(min(shard_size, num - i * shard_size) for i in todo), unit="sample",
               unit_scale=True, desc="sample", disable=not progress, dynamic_ncols=True)
    for index in todo:
        start, stop = index * shard_size, min(num, (index + 1) * shard_size)
        parts = list(chunks(start, stop))
        images = np.concatenate([c.images for c in parts])
        labels = None if parts[0].labels is None else np.concatenate([c.labels for c in parts])
        payload = _encode(images, labels, fmt) if encode is None else encode(images, labels)
        name = shard_name(index, fmt)
        write_atomic(os.path.join(out_dir, name), payload)
        entry = {"index": index, "file": name, "num": stop - start,
                 "sha256": hashlib.sha256(payload).hexdigest()}
        if fmt == "png" and labels is not None:
            entry["labels"] = labels.tolist()
        manifest["shards"] = sorted(manifest["shards"] + [entry], key=lambda e: e["index"])
        _write_manifest(out_dir, manifest, manifest_name)
        bar.update(stop - start)
    bar.close()
    return manifest


def load_samples(path: str) -> tuple[np.ndarray, np.ndarray | None, dict | None]:
    """Reads a sample directory (manifest + shards) or one .npz file: (x, y or None, manifest or None).

    With a manifest, every shard's sha256 is checked against it first: samples changed after
    ``jsynth sample`` wrote them are refused, not evaluated. PNG shards (``--format png``) are
    cut back into images (uint8) with the labels the manifest lists.
    """
    if not os.path.isdir(path):
        x, y = _read_npz(path)
        return x, y, None
    manifest = read_manifest(path)
    if manifest is None:
        files = sorted(f for f in os.listdir(path) if f.endswith(".npz"))
        if not files:
            raise SampleOutputError(f"{path} holds no .npz sample shards and no {MANIFEST}")
        parts = [_read_npz(os.path.join(path, f)) for f in files]
    else:
        entries = manifest_shards(path, manifest)
        if not entries:
            raise SampleOutputError(f"{path}/{MANIFEST} lists no shards: the `jsynth sample` run that "
                                    "wrote it finished none; rerun it with the same arguments")
        for entry in entries:
            _check_shard(path, entry)
        if manifest.get("format", "npz") == "png":
            parts = [_read_png_shard(path, entry, manifest) for entry in entries]
        else:
            parts = [_read_npz(os.path.join(path, e["file"])) for e in entries]
    xs = np.concatenate([p[0] for p in parts])
    ys = None if any(p[1] is None for p in parts) else np.concatenate([p[1] for p in parts])
    return xs, ys, manifest


def _check_shard(path: str, entry: dict) -> None:
    shard = os.path.join(path, entry["file"])
    if not os.path.isfile(shard):
        raise SampleOutputError(f"{shard} is listed in {path}/{MANIFEST} but missing; rerun "
                                "`jsynth sample` with the same arguments to write it")
    if sha256_file(shard) != entry["sha256"]:
        raise SampleOutputError(f"{shard} does not match the sha256 in {path}/{MANIFEST}: it "
                                "changed after it was written. Rerun `jsynth sample` with the same "
                                "arguments to rewrite it, or remove the manifest to use the files "
                                "as they are")


def _read_png_shard(path: str, entry: dict, manifest: dict) -> tuple[np.ndarray, np.ndarray | None]:
    shard = os.path.join(path, entry["file"])
    try:
        with Image.open(shard) as picture:
            pixels = np.asarray(picture)
        images = tiles(pixels, int(entry["num"]), manifest["image_shape"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise SampleOutputError(f"{shard} is not the image grid {path}/{MANIFEST} describes ({error})") from None
    labels = entry.get("labels")
    return images, None if labels is None else np.asarray(labels)


def _read_npz(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive["x"], (archive["y"] if "y" in archive else None)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise SampleOutputError(f"{path} is not a readable sample file with an 'x' array ({error})") from None
