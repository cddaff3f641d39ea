"""The zoo's loaded model versions, refreshed from disk as new versions appear."""

import dataclasses
import logging
import pathlib
import threading

from tfjsigr.serving import backends, batching
from tfjsigr.serving import versions as versions_lib

logger = logging.getLogger("tfjsigr.serving")


def _tree_mtime(path):
    """The newest modification time in a directory tree: a failed load is retried once the
    version's files change."""
    return max(p.stat().st_mtime_ns for p in [path, *path.rglob("*")])


class NotFound(LookupError):
    """A model, version or label the server does not serve (HTTP 404)."""


def _unknown_label(name, label, labels):
    """TF Serving's message for an unknown label, with the labels there are."""
    hint = f"labels of {name}: {', '.join(sorted(labels)) or 'none'}"
    if label == versions_lib.CANARY:
        hint += f"; '{label}' exists once two versions are served"
    return f"Unrecognized servable version label: {label} ({hint})"


@dataclasses.dataclass
class Servable:
    """One loaded model version and its batcher."""

    name: str
    version: int
    path: pathlib.Path
    backend: object
    batcher: batching.DynamicBatcher

    @property
    def signature(self):
        return self.backend.signature


class ModelRepository:
    """Loads the latest versions of every zoo model and keeps them current.

    `refresh()` (called at start and then periodically, off the event loop) loads version
    directories that appeared, unloads the ones that left the served set, and recomputes the
    labels. Each model serves its `num_versions` highest versions that load; a version that
    fails to load is retried once its files change. Lookups read immutable snapshots, so they
    never see a half-updated state.

    Args:
        zoo_dir: the zoo directory.
        backend: "savedmodel" or "onnx".
        num_versions: versions served per model (TF Serving's `latest` policy).
        max_batch_size: most rows the batcher merges into one run.
        batch_timeout_s: how long the batcher waits for more requests.
    """

    def __init__(self, zoo_dir, backend="savedmodel", num_versions=versions_lib.NUM_VERSIONS,
                 max_batch_size=256, batch_timeout_s=0.0005):
        if backend not in backends.BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; expected one of {backends.BACKENDS}")
        self.zoo_dir = pathlib.Path(zoo_dir)
        self.backend = backend
        self._num_versions = num_versions
        self._batching = {"max_batch_size": max_batch_size, "batch_timeout_s": batch_timeout_s}
        # One tuple, swapped whole: (name -> {version: Servable}, name -> {label: version}).
        self._state = ({}, {})
        self._failed = {}  # (name, version) -> (newest mtime in its tree, error message)
        self._lock = threading.Lock()

    def refresh(self):
        """Brings the loaded versions in line with the zoo on disk.

        Returns:
            The list of (name, version) pairs loaded by this call.
        """
        with self._lock:
            models, loaded = {}, []
            for name, base_path in versions_lib.list_models(self.zoo_dir).items():
                current = self._state[0].get(name, {})
                models[name] = {}
                # The highest versions that load: a broken newest one keeps the older served.
                for version in reversed(versions_lib.list_versions(base_path)):
                    if len(models[name]) == self._num_versions:
                        break
                    servable = current.get(version) or self._load(name, version)
                    if servable is not None:
                        models[name][version] = servable
                        loaded += [] if version in current else [(name, version)]
            retired = [
                s for name, current in self._state[0].items() for v, s in current.items()
                if v not in models.get(name, {})
            ]
            labels = {name: versions_lib.default_labels(list(m)) for name, m in models.items()}
            self._state = (models, labels)
        for servable in retired:
            logger.info("unloading %s version %d", servable.name, servable.version)
            servable.batcher.close()
        return loaded

    def _load(self, name, version):
        path = self.zoo_dir / name / versions_lib.SAVED_MODEL_DIR / str(version)
        try:
            mtime = _tree_mtime(path)
        except OSError:  # Renamed or removed while we looked: next poll.
            return None
        failed = self._failed.get((name, version))
        if failed and failed[0] == mtime:
            return None
        try:
            backend = backends.load_backend(path, self.backend)
        except Exception as error:  # noqa: BLE001 - a bad version must not stop the others
            message = " ".join(str(error).split()) or type(error).__name__
            logger.warning("cannot load %s version %d: %s", name, version, message)
            self._failed[(name, version)] = (mtime, message)
            return None
        self._failed.pop((name, version), None)
        logger.info("loaded %s version %d (%s)", name, version, self.backend)
        batcher = batching.DynamicBatcher(
            backend.run, name=f"batcher-{name}-{version}", **self._batching
        )
        return Servable(name, version, path, backend, batcher)

    def close(self):
        """Unloads everything, answering the requests already queued first."""
        with self._lock:
            (models, _), self._state = self._state, ({}, {})
        for versions in models.values():
            for servable in versions.values():
                servable.batcher.close()

    def failures(self):
        """The versions that failed to load (until their files change): a dict from
        (name, version) to the one-line error."""
        return {key: message for key, (_, message) in sorted(self._failed.items())}

    def served(self):
        """The served versions of every model: a dict from name to ascending versions."""
        return {name: sorted(v) for name, v in sorted(self._state[0].items()) if v}

    def versions(self, name):
        """The loaded versions of a model, ascending.

        Raises:
            NotFound: the model is unknown.
        """
        versions = self._state[0].get(name)
        if not versions:
            raise NotFound(f"Servable not found for request: Latest({name})")
        return sorted(versions)

    def labels(self, name):
        """The version labels of a model."""
        return dict(self._state[1].get(name, {}))

    def resolve(self, name, version=None, label=None):
        """The servable a request addresses.

        Args:
            name: the model name.
            version: an int version, or None.
            label: a version label, or None. With neither, the highest version.

        Returns:
            The `Servable`.

        Raises:
            NotFound: unknown model, version or label.
        """
        models, all_labels = self._state
        versions = models.get(name)
        if not versions:
            raise NotFound(f"Servable not found for request: Latest({name})")
        if label is not None:
            labels = all_labels.get(name, {})
            if label not in labels:
                raise NotFound(_unknown_label(name, label, labels))
            version = labels[label]
        if version is None:
            version = max(versions)
        if version not in versions:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return versions[version]
