"""Data sets for tfjsigr: images as float32 NHWC in [0, 1], labels as int32 class ids."""

from tfjsigr import _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    {
        "DATASETS": "datasets",
        "DatasetSpec": "datasets",
        "get_spec": "datasets",
        "load_dataset": "datasets",
        "DEBIAN_DIR": "fashion_mnist",
        "SAMPLE_DIR": "fashion_mnist",
        "load_fashion_mnist": "fashion_mnist",
        "make_dataset": "pipeline",
        "DataInfo": "source",
        "DataSource": "source",
        "check_model_matches": "source",
        "parse_eps": "source",
        "resolve_data": "source",
    },
)
