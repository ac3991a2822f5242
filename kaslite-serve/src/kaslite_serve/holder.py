"""The model being served: loaded through a model source, swapped atomically on reload.

Requests take ``holder.current`` once and use that reference to the end, so a
reload (load, warm up, then one assignment) never changes a model under a
request in flight. Versions asked for by name load on demand into a small LRU.
"""

import logging
import threading
from collections import OrderedDict
from typing import Any

import attrs
import torch

from kaslite.errors import KasliteError
from kaslite.plugins import get_model_source
from kaslite_serve.errors import InputError, ModelUnavailable, NotReady, UnknownVersion
from kaslite_serve.uris import FILE_SCHEME, file_stem, registered_name, scheme_of, version_uri

logger = logging.getLogger("kaslite.serve")


def describe(exc: BaseException) -> str:
    """One line about ``exc``: kaslite's own errors speak for themselves, others carry their type."""
    lines = str(exc).strip().splitlines()
    first = lines[0] if lines else ""
    if isinstance(exc, KasliteError) and first:
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def version_label(version: object, metadata: dict[str, Any]) -> str:
    """The version clients name: the source's, else the file's metadata ``version``, else ``"1"``."""
    if version is not None:
        return str(version)
    return str(metadata.get("version", "1"))


@attrs.frozen
class ServedModel:
    """A network in eval mode with the version it answers as."""

    net: Any
    version: str
    uri: str
    metadata: dict[str, Any]

    @classmethod
    def prepare(cls, loaded: Any, version: str | None = None) -> "ServedModel":
        """Wrap a source's ``LoadedModel`` and run one warm-up batch before it serves anyone."""
        label = version if version is not None else version_label(loaded.version, loaded.metadata or {})
        model = cls(loaded.net.eval(), label, loaded.uri, dict(loaded.metadata or {}))
        model.predict(torch.zeros(1, model.input_dim))
        return model

    @property
    def input_dim(self) -> int:
        return int(self.net.input_dim)

    @property
    def num_classes(self) -> int:
        return int(self.net.num_classes)

    def seeds(self) -> dict[str, dict[str, Any]]:
        """Seed id -> its state and alpha, in network order."""
        return {sid: {"state": seed.state.value, "alpha": float(seed.alpha)} for sid, seed in self.net.seeds.items()}

    def predict(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(predicted class per row, class probabilities per row)."""
        with torch.inference_mode():
            logits = self.net(batch)
            # Finite but huge inputs can overflow float32 inside the net; JSON cannot carry the result.
            if not bool(torch.isfinite(logits).all()):
                raise InputError("the model's output is not finite for this data (values too large?)")
            probabilities = torch.softmax(logits, dim=1)
            return probabilities.argmax(dim=1), probabilities


class ModelHolder:
    """The served model of one URI, its on-demand versions, and serialised atomic reloads."""

    def __init__(self, uri: str, version_cache_size: int = 4) -> None:
        self.uri = uri
        self.scheme = scheme_of(uri)
        self.source = get_model_source(self.scheme)  # an unknown scheme fails here, listing the installed ones
        self.current: ServedModel | None = None
        self._cache: OrderedDict[str, ServedModel] = OrderedDict()
        self._cache_size = version_cache_size
        self._cache_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._reload_lock = threading.Lock()

    def start(self) -> None:
        """The first load: a missing file is fatal; an empty registry alias is not (reload takes it later)."""
        try:
            model = self.reload()
        except Exception as exc:
            if self.scheme == FILE_SCHEME:
                raise ModelUnavailable(f"cannot serve --model {self.uri!r}: {describe(exc)}") from None
            logger.warning(
                "no model behind %s yet (%s); /health/ready answers 503 until POST /reload-model loads one",
                self.uri,
                describe(exc),
            )
            return
        logger.info("serving %s version %s", self.uri, model.version)

    def reload(self) -> ServedModel:
        """Load what the URI names now, warm it up, then swap it in; on error the old model stays."""
        with self._reload_lock:  # concurrent reloads queue up; none sees a half-loaded model
            model = ServedModel.prepare(self.source.load(self.uri))
            self.current = model  # the one swap: a request holds the old model or the new one, whole
            return model

    def model(self, version: str | None = None) -> ServedModel:
        """The current model, or the named version (loaded on demand, then cached)."""
        current = self.current
        if current is None:
            raise NotReady("no model is loaded; POST /reload-model once one is available")
        if version is None or version == current.version:
            return current
        with self._cache_lock:
            cached = self._cache.get(version)
            if cached is not None:
                self._cache.move_to_end(version)
                return cached
        with self._load_lock:  # one load per version even when many requests ask for it at once
            with self._cache_lock:
                cached = self._cache.get(version)
            if cached is None:
                cached = self._load_version(version)
            with self._cache_lock:
                self._cache[version] = cached
                self._cache.move_to_end(version)
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
            return cached

    def cached_versions(self) -> list[str]:
        """Versions held in the LRU, least recently used first."""
        with self._cache_lock:
            return list(self._cache)

    def versions(self) -> list[dict[str, Any]]:
        """What the model source lists behind the URI."""
        try:
            return list(self.source.list_versions(self.uri))
        except Exception as exc:
            raise NotReady(f"cannot list the versions of {self.uri}: {describe(exc)}") from None

    def version_labels(self) -> list[str]:
        """The version names clients can ask for."""
        return [version_label(entry.get("version"), entry.get("metadata") or {}) for entry in self.versions()]

    def model_name(self, override: str | None = None) -> str:
        """The name clients address: a registry's model name, else the run name, else the file's stem."""
        if override:
            return override
        if self.scheme != FILE_SCHEME:
            return registered_name(self.uri) or self.scheme
        current = self.current
        run_name = current.metadata.get("run_name") if current is not None else None
        return str(run_name) if run_name else file_stem(self.uri)

    def _load_version(self, version: str) -> ServedModel:
        entries = self.versions()
        labels = [version_label(entry.get("version"), entry.get("metadata") or {}) for entry in entries]
        if version not in labels:
            raise UnknownVersion(f"unknown model_version {version!r}; available: {', '.join(labels) or '(none)'}")
        entry = entries[labels.index(version)]
        uri = entry.get("uri") or (self.uri if self.scheme == FILE_SCHEME else version_uri(self.uri, version))
        try:
            return ServedModel.prepare(self.source.load(uri), version)
        except Exception as exc:
            raise NotReady(f"model version {version} could not be loaded: {describe(exc)}") from None
