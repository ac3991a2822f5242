"""The model being served: loaded through a model source, swapped atomically on reload.

Requests take ``holder.current`` once and use that reference to the end, so a
reload (load, warm up, then one assignment) never changes a model under a
request in flight. Versions asked for by name load on demand into a small LRU.
Every load, reload, failure and eviction is announced on the app's
:class:`kaslite.serving.ServerEvents`.
"""

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

import attrs
import numpy as np
import torch

from kaslite.errors import KasliteError, first_line, message_line
from kaslite.models import Signature, parse_model_uri
from kaslite.models.files import ModelFileError
from kaslite.plugins import get_model_source
from kaslite.serving import LoadCause, ModelEvent, ServerEvents
from kaslite_serve.errors import InputError, NotReady, UnknownVersion

logger = logging.getLogger("kaslite.serve")


def describe(exc: BaseException) -> str:
    """One line about ``exc``: kaslite's own errors speak for themselves, others carry their type."""
    if isinstance(exc, KasliteError) and str(exc).strip():
        return message_line(exc)
    return first_line(exc)


def version_label(version: object, metadata: dict[str, Any]) -> str:
    """The version clients name: the source's, else the file's metadata ``version``, else ``"1"``."""
    if version is not None:
        return str(version)
    return str(metadata.get("version", "1"))


def network_of(loaded: Any) -> Any:
    """The module that serves a source's ``LoadedModel``: the grown network fused into plain layers
    (active seeds folded in, the others gone), in eval mode."""
    import kaslite

    return kaslite.fuse(loaded.net)


def seed_states(net: Any) -> dict[str, dict[str, Any]]:
    """Seed id -> its state and alpha in the grown network, in network order."""
    from kaslite.nn.modules import find_seeds

    return {seed.seed_id: {"state": seed.state.value, "alpha": float(seed.alpha)} for seed in find_seeds(net)}


def signature_for_serving(loaded: Any) -> Signature:
    """What the loaded model takes and returns, from its file; refused when the server cannot answer it."""
    signature: Signature | None = loaded.signature
    if signature is None:
        raise ModelFileError(
            f"{loaded.uri} does not say what {type(loaded.net).__name__} takes: save it with "
            "kaslite.save_model(model, path, example_input=batch), a batch of real inputs"
        )
    if signature.input.is_integer:
        raise ModelFileError(
            f"{loaded.uri} takes {signature.input.dtype} inputs; the server answers models over floating-point inputs"
        )
    if not signature.output.shape:
        raise ModelFileError(
            f"{loaded.uri} returns one value per sample; the server answers classifiers (scores on a last axis)"
        )
    return signature


@attrs.frozen
class ServedModel:
    """A network in eval mode with the version it answers as, and what it takes and returns."""

    net: Any
    version: str
    uri: str
    metadata: dict[str, Any]
    signature: Signature
    load_seconds: float
    # The grown network's seeds: the served (fused) network has none left to ask.
    grown_seeds: dict[str, dict[str, Any]] = attrs.field(factory=dict)

    @property
    def input_dim(self) -> int:
        """Values in one sample (its features, for rows)."""
        return self.signature.input.size

    @property
    def num_classes(self) -> int:
        return self.signature.output.shape[-1]

    @classmethod
    def prepare(cls, loaded: Any, started: float, version: str | None = None) -> "ServedModel":
        """Wrap a source's ``LoadedModel`` and run its example batch (the warm-up) before it serves anyone:
        a model that does not return what its file says is refused here, not at the first request."""
        label = version if version is not None else version_label(loaded.version, loaded.metadata or {})
        signature = signature_for_serving(loaded)
        model = cls(
            network_of(loaded),
            label,
            loaded.uri,
            dict(loaded.metadata or {}),
            signature,
            0.0,
            seed_states(loaded.net),
        )
        example = signature.example_batch().to(torch.float32)
        with torch.inference_mode():
            output = model.net(example)
        if not isinstance(output, torch.Tensor) or tuple(output.shape[1:]) != signature.output.shape:
            got = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ModelFileError(
                f"{loaded.uri}: the model returns {got} per sample; its file says {signature.output.shape}"
            )
        return attrs.evolve(model, load_seconds=time.perf_counter() - started)

    def seeds(self) -> dict[str, dict[str, Any]]:
        """Seed id -> its state and alpha in the grown network, in network order."""
        return self.grown_seeds

    def predict(self, batch: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """(predicted class, class probabilities as float64) per sample, as numpy arrays: the argmax and
        softmax over the model's last output axis (one class per row for rows of logits, one per position
        for a sequence's)."""
        with torch.inference_mode():
            logits = self.net(batch)
            probabilities = torch.softmax(logits.float(), dim=-1)
        # numpy from here: on a few rows each of its calls costs a fraction of a torch operator's.
        if not np.isfinite(logits.float().numpy()).all():
            # Finite but huge inputs can overflow float32 inside the net; JSON cannot carry the result.
            raise InputError("the model's output is not finite for this data (values too large?)")
        probabilities_np = probabilities.numpy()
        # float64: the JSON carries each probability exactly as the float it is, as it always has.
        return probabilities_np.argmax(axis=-1), probabilities_np.astype(np.float64)


class ModelHolder:
    """The served model of one URI, its on-demand versions, and serialised atomic reloads.

    ``state`` is ``loading`` until the first load (:meth:`start`, run by the
    app's lifespan) settles, then ``ready`` while a model is loaded, or
    ``no_model`` when none could be.
    """

    def __init__(
        self, uri: str, version_cache_size: int = 4, events: ServerEvents | None = None, name: str | None = None
    ) -> None:
        self.uri = uri
        self.target = parse_model_uri(uri)
        self.source = get_model_source(self.target.scheme)  # an unknown scheme fails here, listing the installed ones
        self.events = events if events is not None else ServerEvents()
        self.current: ServedModel | None = None
        self._name = name
        self._started = threading.Event()
        self._cache: OrderedDict[str, ServedModel] = OrderedDict()
        self._cache_size = version_cache_size
        self._cache_lock = threading.Lock()
        self._load_lock = threading.Lock()
        self._reload_lock = threading.Lock()

    # -- the current model ---------------------------------------------------------

    @property
    def state(self) -> str:
        if self.current is not None:
            return "ready"
        return "no_model" if self._started.is_set() else "loading"

    @property
    def model_name(self) -> str:
        """The name clients address: ``--model-name``, a registry's model name, the run's name, the file's stem."""
        if self._name:
            return self._name
        current = self.current
        run_name = current.metadata.get("run_name") if current is not None and self.target.is_file else None
        return str(run_name) if run_name else self.target.label

    def start(self) -> None:
        """The first load, announced as ``loaded`` or ``failed``; on failure the server waits for a reload."""
        try:
            self._load_current("start")
        except Exception as exc:
            logger.warning(
                "no model behind %s yet (%s); /health/ready answers 503 until POST /reload-model loads one",
                self.uri,
                describe(exc),
            )
        else:
            model = self.current
            assert model is not None
            logger.info("serving %s version %s (loaded in %.3f s)", self.uri, model.version, model.load_seconds)
        finally:
            self._started.set()

    def wait_started(self, timeout: float | None = None) -> bool:
        """Wait until the first load has settled (either way); False on timeout."""
        return self._started.wait(timeout)

    def reload(self) -> ServedModel:
        """Load what the URI names now, warm it up, then swap it in; on error the old model stays."""
        return self._load_current("reload")

    def _load_current(self, cause: LoadCause) -> ServedModel:
        with self._reload_lock:  # concurrent reloads queue up; none sees a half-loaded model
            started = time.perf_counter()
            try:
                model = ServedModel.prepare(self.source.load(self.uri), started)
            except Exception as exc:
                self._announce("failed", cause, error=describe(exc))
                raise
            self.current = model  # the one swap: a request holds the old model or the new one, whole
        self._announce("loaded" if cause == "start" else "reloaded", cause, model)
        return model

    # -- versions by name ------------------------------------------------------------

    def cached(self, version: str | None = None) -> ServedModel | None:
        """The model to answer ``version`` if it is at hand (current or cached), else None: never loads."""
        current = self.current
        if current is None:
            if self.state == "loading":
                raise NotReady("the model is still loading; try again shortly")
            raise NotReady("no model is loaded; POST /reload-model once one is available")
        if version is None or version == current.version:
            return current
        with self._cache_lock:
            cached = self._cache.get(version)
            if cached is not None:
                self._cache.move_to_end(version)
            return cached

    def model(self, version: str | None = None) -> ServedModel:
        """The current model, or the named version (loaded on demand, then cached)."""
        found = self.cached(version)
        if found is not None:
            return found
        assert version is not None
        with self._load_lock:  # one load per version even when many requests ask for it at once
            with self._cache_lock:
                loaded = self._cache.get(version)
            if loaded is None:
                loaded = self._load_version(version)
            with self._cache_lock:
                self._cache[version] = loaded
                self._cache.move_to_end(version)
                evicted = []
                while len(self._cache) > self._cache_size:
                    evicted.append(self._cache.popitem(last=False)[1])
        for model in evicted:
            self._announce("evicted", "request", model)
        return loaded

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

    def _load_version(self, version: str) -> ServedModel:
        entries = self.versions()
        labels = [version_label(entry.get("version"), entry.get("metadata") or {}) for entry in entries]
        if version not in labels:
            raise UnknownVersion(f"unknown model_version {version!r}; available: {', '.join(labels) or '(none)'}")
        entry = entries[labels.index(version)]
        uri = entry.get("uri") or (self.uri if self.target.is_file else self.target.of_version(version))
        started = time.perf_counter()
        try:
            model = ServedModel.prepare(self.source.load(uri), started, version)
        except Exception as exc:
            self._announce("failed", "request", version=version, error=describe(exc))
            raise NotReady(f"model version {version} could not be loaded: {describe(exc)}") from None
        self._announce("loaded", "request", model)
        return model

    def _announce(
        self,
        kind: Any,
        cause: LoadCause,
        model: ServedModel | None = None,
        version: str | None = None,
        error: str | None = None,
    ) -> None:
        if model is None:
            event = ModelEvent(kind, cause, self.model_name, version, error=error)
        else:
            event = ModelEvent(
                kind, cause, self.model_name, model.version, model.input_dim, model.num_classes, model.load_seconds
            )
        self.events.model_event(event)
