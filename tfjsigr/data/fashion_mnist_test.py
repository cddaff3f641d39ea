import pytest

from tfjsigr.data import fashion_mnist
from tfjsigr.data.datasets_test import write_idx


def test_a_data_dir_is_the_only_place_looked_in(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"tried: {tmp_path}\\. "):
        fashion_mnist.load_fashion_mnist("test", data_dir=tmp_path)
    write_idx(tmp_path, "test", 3)
    _, labels, description = fashion_mnist.load_fashion_mnist("test", data_dir=tmp_path)
    assert len(labels) == 3 and str(tmp_path) in description
    with pytest.raises(ValueError, match="cannot be used with source 'sample'"):
        fashion_mnist.load_fashion_mnist("test", "sample", data_dir=tmp_path)
