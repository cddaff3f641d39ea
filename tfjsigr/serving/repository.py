"""The zoo's loaded model versions, refreshed from disk as new versions appear."""

import dataclasses
import functools
import logging
import pathlib
import threading

from tfjsigr.checks import one_line
from tfjsigr.serving import backends, batching, protocol
from tfjsigr.serving import versions as versions_lib
from tfjsigr.zoo import card as card_lib
from tfjsigr.zoo import layout
from tfjsigr.zoo import verify as verify_lib

logger = logging.getLogger("tfjsigr.serving")


def _tree_mtime(path):
    """The newest modification time in a directory tree: a failed load is retried once the
    version's files change."""
    return max(p.stat().st_mtime_ns for p in [path, *path.rglob("*")])


class NotFound(protocol.ProtocolError):
    """A model or version the server does not serve (HTTP 404, gRPC NOT_FOUND)."""

    def __init__(self, message):
        super().__init__("NOT_FOUND", message)


def _unknown_label(name, label, labels):
    """TF Serving's message for an unknown label, with the labels there are."""
    hint = f"labels of {name}: {', '.join(sorted(labels)) or 'none'}"
    if label == versions_lib.CANARY:
        hint += f"; '{label}' exists once two versions are served"
    return protocol.invalid(f"Unrecognized servable version label: {label} ({hint})")


@dataclasses.dataclass
class Servable:
    """One loaded model version and its batcher."""

    name: str
    version: int
    path: pathlib.Path
    backend: object
    batcher: batching.DynamicBatcher
    class_names: tuple = ()

    @property
    def signature(self):
        return self.backend.signature

    @functools.cached_property
    def metadata(self):
        """TF Serving's GetModelMetadataResponse of this version."""
        return protocol.metadata_proto(self.name, self.version, self.signature, self.class_names)


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
            for name, on_disk in versions_lib.list_model_versions(self.zoo_dir).items():
                current = self._state[0].get(name, {})
                models[name], card = {}, _Card(self.zoo_dir / name)
                # The highest versions that verify and load: a broken newest one keeps the
                # older ones served.
                for version in reversed(on_disk):
                    if len(models[name]) == self._num_versions:
                        break
                    servable = current.get(version) or self._load(name, version, card)
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

    def _load(self, name, version, card):
        path = self.zoo_dir / name / versions_lib.SAVED_MODEL_DIR / str(version)
        try:
            stamp = (_tree_mtime(path), card.stamp)
        except OSError:  # Renamed or removed while we looked: next poll.
            return None
        failed = self._failed.get((name, version))
        if failed and failed[0] == stamp:
            return None
        try:
            refusal, onnx_path = versions_lib.refusal(self.zoo_dir, name, version, card.read()), None
            if refusal is None and self.backend == "onnx":
                onnx_path, refusal = card.onnx_file(version)
            if refusal is not None:
                raise _Refused(refusal)
            backend = backends.load_backend(path, self.backend, onnx_path)
        except Exception as error:  # noqa: BLE001 - a bad version must not stop the others
            message = one_line(error)
            verb = "refusing" if isinstance(error, _Refused) else "cannot load"
            logger.warning("%s %s version %d: %s", verb, name, version, message)
            self._failed[(name, version)] = (stamp, message)
            return None
        self._failed.pop((name, version), None)
        logger.info("loaded %s version %d (%s)", name, version, self.backend)
        batcher = batching.DynamicBatcher(
            backend.run, name=f"batcher-{name}-{version}", **self._batching
        )
        return Servable(name, version, path, backend, batcher, card.class_names())

    def close(self):
        """Unloads everything, answering the requests already queued first."""
        with self._lock:
            (models, _), self._state = self._state, ({}, {})
        for versions in models.values():
            for servable in versions.values():
                servable.batcher.close()

    def failures(self):
        """The versions refused or that failed to load (until their files change): a dict from
        (name, version) to the one-line reason."""
        return {key: message for key, (_, message) in sorted(self._failed.items())}

    def refused(self):
        """`failures()` of the versions still on disk, by model: name -> {version: reason}."""
        refused = {}
        for (name, version), message in self.failures().items():
            if (self.zoo_dir / name / versions_lib.SAVED_MODEL_DIR / str(version)).is_dir():
                refused.setdefault(name, {})[version] = message
        return refused

    def status(self, spec):
        """TF Serving's GetModelStatusResponse for a `protocol.ModelSpec`: the served
        versions (AVAILABLE) and the refused ones (END, with the reason).

        Raises:
            ProtocolError: unknown model or version (NOT_FOUND), unknown label.
        """
        refused = self.refused().get(spec.name, {})
        if spec.version in refused:
            return protocol.status_proto([], [(spec.version, refused[spec.version])])
        if spec.version is None and spec.label is None:  # Newest first, as before.
            available = self._state[0].get(spec.name) or ([] if refused else self.versions(spec.name))
            return protocol.status_proto(sorted(available, reverse=True),
                                         sorted(refused.items(), reverse=True))
        return protocol.status_proto([self.resolve(spec.name, spec.version, spec.label).version])

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
                raise _unknown_label(name, label, labels)
            version = labels[label]
        if version is None:
            version = max(versions)
        if version not in versions:
            raise NotFound(f"Servable not found for request: Specific({name}, {version})")
        return versions[version]


class _Refused(Exception):
    """A version that does not verify against its entry's card."""


class _Card:
    """An entry's card, read at most once per refresh, and what it says of model.onnx."""

    def __init__(self, entry_dir):
        self.entry_dir = entry_dir
        path = entry_dir / card_lib.CARD_FILE
        try:
            info = path.stat()
            self.stamp = (info.st_mtime_ns, info.st_size, info.st_ino)
        except OSError:
            self.stamp = None

    @functools.cache  # noqa: B019 - one instance per entry and refresh
    def read(self):
        try:
            return card_lib.read_card(self.entry_dir)
        except (OSError, ValueError) as error:
            return error

    def class_names(self):
        """The class names the card records with its data, or ()."""
        card = self.read()
        return layout.class_names(card.get("data") if isinstance(card, dict) else None)

    def onnx_file(self, version):
        """(the entry's model.onnx when it was exported with `version` and verifies, else None;
        the reason to refuse the version, or None)."""
        card = self.read()
        if isinstance(card, Exception) or card.get("version") != version:
            return None, None
        artifacts = card.get("artifacts") if isinstance(card.get("artifacts"), dict) else {}
        if layout.ONNX_FILE not in artifacts:
            return None, None
        path = self.entry_dir / layout.ONNX_FILE
        problems = verify_lib._digest_problems(path, artifacts[layout.ONNX_FILE])
        return (None, problems[0]) if problems else (path, None)
