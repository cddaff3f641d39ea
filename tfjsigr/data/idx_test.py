import gzip

import numpy as np
import pytest

from tfjsigr.data import idx


def test_round_trip_plain_and_gzipped(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "plain").write_bytes(idx.encode(array))
    (tmp_path / "packed.gz").write_bytes(gzip.compress(idx.encode(array)))
    for name in ("plain", "packed.gz"):
        np.testing.assert_array_equal(idx.read(tmp_path / name), array)


@pytest.mark.parametrize(
    "content, message",
    [
        (
            b"\x00\x00\x08\x03",
            "truncated IDX header \\(3 dimensions need 16 bytes, the file holds 4\\)",
        ),
        (b"\x00\x00\x08\x01\x00\x00\x00", "truncated IDX header"),
        (b"\x00\x00\x08\x01\x00\x00\x00\x05\x01", "header announces 5 values but the file holds 1"),
        (b"\x00\x00\x0d\x01", "not an unsigned-byte IDX file"),
    ],
)
def test_malformed_files_are_value_errors_naming_the_file(tmp_path, content, message):
    path = tmp_path / "labels-idx1-ubyte"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        idx.read(path)


def test_corrupt_gzip_data_is_a_value_error_naming_the_file(tmp_path):
    packed = bytearray(gzip.compress(idx.encode(np.zeros(100, np.uint8))))
    packed[10] = 0x07  # The first deflate block's type becomes the reserved 0b11 (zlib.error).
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(bytes(packed))
    with pytest.raises(ValueError, match=f"{path}: cannot read IDX data"):
        idx.read(path)
