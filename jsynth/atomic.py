"""One atomic file write: readers see the old file or the whole new one, never a partial one.

``write_atomic`` writes into a temporary file with a unique name in the destination's folder (same
file system) and renames it over the destination with ``os.replace``, which is atomic on POSIX and
Windows. Two writers racing on one path each leave a complete file; the last rename wins. There is
no fsync: this guards against readers and crashes of the writing process, not against power loss.
"""
from __future__ import annotations

import os
import uuid


def write_atomic(path: str, data: bytes | str) -> None:
    """Writes ``data`` (``str`` as UTF-8) to ``path`` atomically, replacing any file there.

    The folder must exist. The temporary file (``.<name>.<pid>.<random>.tmp`` beside ``path``) is
    removed if the write fails.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    folder, name = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise
