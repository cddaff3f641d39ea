"""tf.distribute strategies by name, and the checks of a multi-worker cluster's TF_CONFIG."""

import json
import os

STRATEGIES = ("default", "mirrored", "multi-worker")


def make_strategy(name):
    """A `tf.distribute` strategy from "default", "mirrored" or "multi-worker" (reads TF_CONFIG).

    Raises:
        ValueError: unknown name, or multi-worker without a valid TF_CONFIG (a cluster of
            "host:port" lists and this process's task in it).
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        _check_tf_config(_tf_config())
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}; known: {list(STRATEGIES)}")


def _tf_config():
    try:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    except json.JSONDecodeError as error:
        raise ValueError(f"TF_CONFIG is not valid JSON ({error})") from None
    if not isinstance(config, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object, got {_short_json(config)}")  # noqa: TRY004
    return config


def _check_tf_config(config):
    """ValueError unless TF_CONFIG has a cluster of "host:port" lists and a task within it."""
    if "cluster" not in config:
        raise ValueError("--strategy multi-worker needs TF_CONFIG with a 'cluster' (see README)")
    cluster = config["cluster"]
    if not (isinstance(cluster, dict) and cluster and all(map(_is_address_list, cluster.values()))):
        raise ValueError(
            "TF_CONFIG: 'cluster' must map task types to lists of \"host:port\" addresses, "
            f"got {_short_json(cluster)}"
        )
    task = config.get("task")
    if not isinstance(task, dict) or task.get("type") not in cluster:
        raise ValueError(
            f"TF_CONFIG: 'task' must name a 'type' of the cluster ({', '.join(sorted(cluster))}) "
            f"and an 'index', got {_short_json(task)}"
        )
    index, addresses = task.get("index", 0), cluster[task["type"]]
    if not _is_integer(index) or not 0 <= index < len(addresses):
        raise ValueError(
            f"TF_CONFIG: task 'index' must be an integer from 0 to {len(addresses) - 1} "
            f"(the {task['type']} addresses), got {_short_json(index)}"
        )


def _is_address_list(addresses):
    return isinstance(addresses, list) and len(addresses) > 0 and all(map(_is_address, addresses))


def _is_address(address):
    if not isinstance(address, str) or ":" not in address:
        return False
    host, port = address.rsplit(":", 1)
    return bool(host) and port.isdigit() and 0 < int(port) < 65536


def _is_integer(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _short_json(value):
    return json.dumps(value)[:200]


def worker_index():
    """(is_chief, index) of this process in a multi-worker cluster (chief: worker 0 or 'chief')."""
    task = _tf_config().get("task", {})
    kind, index = task.get("type", "worker"), int(task.get("index", 0))
    return kind == "chief" or (kind == "worker" and index == 0), index
