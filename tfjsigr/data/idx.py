"""Reader and writer for the IDX format of (Fashion-)MNIST, gzipped or not."""

import gzip
import pathlib
import struct
import zlib

import numpy as np

_UNSIGNED_BYTE = 0x08


def read(path):
    """Reads an IDX file (optionally gzipped) into a uint8 numpy array.

    Args:
        path: file path; a `.gz` suffix means gzip.

    Returns:
        The array, shaped as the file's header says.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not a valid unsigned-byte IDX file.
    """
    path = pathlib.Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as error:
        if isinstance(error, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot read IDX data ({error})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != _UNSIGNED_BYTE:
        raise ValueError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header ({ndim} dimensions need {header} bytes, "
            f"the file holds {len(data)})"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise ValueError(
            f"{path}: header announces {expected} values but the file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def encode(array):
    """Encodes a uint8 array as IDX bytes."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UNSIGNED_BYTE, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()
