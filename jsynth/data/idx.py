"""Reader for the IDX format used by the MNIST family of data sets.

Layout (all integers big-endian): two zero bytes, one element-type byte, one
byte giving the number of dimensions d, then d uint32 sizes, then the
elements in C order. Files may be gzipped; gzip is recognised by its magic
bytes rather than the file name, because renamed downloads are common.
"""
import gzip
import zlib
from pathlib import Path

import numpy as np

from jsynth.data.errors import DataError

_GZIP_MAGIC = b"\x1f\x8b"

# Element-type byte -> numpy dtype. Multi-byte types are big-endian on disk.
_ELEMENT_TYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def _read_bytes(path: Path) -> bytes:
    """Return the file's IDX bytes, decompressing gzip when the magic says so."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file {path} does not exist.") from None
    except OSError as e:
        raise DataError(f"IDX file {path} could not be read: {e}.") from e
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    # EOFError: stream cut short; BadGzipFile (an OSError): bad header or CRC;
    # zlib.error: corrupt deflate data.
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(
            f"IDX file {path} starts like gzip but is corrupt or truncated ({e}); "
            "download it again."
        ) from e


def read_idx(path: str | Path) -> np.ndarray:
    """Read one IDX file (raw or gzipped) into a numpy array.

    Args:
      path: the file; gzip compression is detected from its first two bytes.

    Returns:
      An array with the shape stored in the header, in native byte order
      (uint8 for MNIST files). The array is a fresh, writable copy.

    Raises:
      DataError: the file is missing, not IDX, of an unknown element type,
        truncated, too long, or a corrupt gzip stream.
    """
    path = Path(path).expanduser()
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(
            f"{path} is not an IDX file: expected the first two bytes to be 00 00, "
            f"got {raw[:4].hex(' ') or 'an empty file'}. Point at the MNIST-style "
            "*-ubyte files (gzipped or not)."
        )
    type_byte, ndim = raw[2], raw[3]
    if type_byte not in _ELEMENT_TYPES:
        known = ", ".join(f"0x{k:02X}" for k in _ELEMENT_TYPES)
        raise DataError(
            f"IDX file {path} has element type 0x{type_byte:02X}; known types are {known}."
        )
    dtype = _ELEMENT_TYPES[type_byte]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise DataError(
            f"IDX file {path} is truncated: its header needs {header_size} bytes for "
            f"{ndim} dimensions but the file has {len(raw)} bytes; download it again."
        )
    shape = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    expected = header_size + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(
            f"IDX file {path} is {problem}: header shape {shape} of {dtype.name} needs "
            f"{expected} bytes, the (decompressed) file has {len(raw)}; download it again."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header_size).reshape(shape)
    # Native byte order so downstream arithmetic and jax transfers need no swaps.
    return data.astype(dtype.newbyteorder("="), copy=True)
