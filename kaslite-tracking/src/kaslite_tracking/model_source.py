"""The ``models`` model source: ``models:/NAME@ALIAS`` and ``models:/NAME/N`` from the MLflow registry.

The store is ``MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the
working directory. Loading downloads the version's artifacts and reads
kaslite's own ``model.pt`` with ``torch.load(weights_only=True)``: nothing is
unpickled.
"""

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaslite.errors import ConfigError
from kaslite.models import ModelUri, parse_model_uri
from kaslite_tracking.store import check_store, mlflow_env, resolve_tracking_uri, store_errors

MODEL_FILE = Path("artifacts") / "model.pt"  # where the pyfunc model keeps kaslite's file


def parse_models_uri(uri: str) -> ModelUri:
    """``models:/NAME@ALIAS``, ``models:/NAME/N``, ``models:/NAME/latest`` or (for listing) ``models:/NAME``."""
    target = parse_model_uri(uri)
    version = target.version
    # Registry versions are numbers; "latest" is MLflow's name for the newest.
    if target.scheme != "models" or target.name is None or (version not in (None, "latest") and not version.isdigit()):
        raise ModelUri(uri, "models").invalid()
    return target


@contextlib.contextmanager
def _registry(name: str) -> Iterator[Any]:
    from mlflow import MlflowClient

    from kaslite_tracking.registry import Registry

    tracking_uri = resolve_tracking_uri()
    with mlflow_env(), store_errors(tracking_uri):
        check_store(tracking_uri, must_exist=True)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        yield Registry(client, name, tracking_uri)


def _resolve(registry: Any, name: str, target: ModelUri) -> Any:
    if target.alias is not None:
        return registry.require_holder(target.alias)
    if target.version is None:
        raise ConfigError(
            f"model URI models:/{name} names no version: add @ALIAS or /VERSION (e.g. models:/{name}@production)"
        )
    if target.version == "latest":
        versions = registry.versions()
        if not versions:
            raise ConfigError(f"model {name!r} has no versions")
        return versions[-1]
    return registry.get(target.version)


def load_registered(uri: str) -> Any:
    """The kaslite network behind a ``models:/`` URI, as a :class:`kaslite.models.LoadedModel`."""
    import mlflow.artifacts

    from kaslite.models import LoadedModel, load_model

    target = parse_models_uri(uri)
    name = str(target.name)
    with _registry(name) as registry:
        info = _resolve(registry, name, target)
        with tempfile.TemporaryDirectory(prefix="kaslite-model-") as tmp:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=info.uri,
                dst_path=tmp,
                tracking_uri=registry.tracking_uri,
                registry_uri=registry.tracking_uri,
            )
            path = Path(local) / MODEL_FILE
            if not path.is_file():
                raise ConfigError(f"{info.uri} is not a kaslite model (it has no {MODEL_FILE})")
            net = load_model(path)
    metadata = {**getattr(net, "metadata", {}), "registered_model": info.name, "registry": info.as_dict()}
    return LoadedModel(net=net, metadata=metadata, uri=uri, version=info.version)


def list_registered(uri: str) -> list[dict[str, Any]]:
    """Every version of the model a ``models:/`` URI names: version, aliases, val_acc, run_id, created, uri."""
    target = parse_models_uri(uri)
    with _registry(str(target.name)) as registry:
        return [info.as_dict() for info in registry.versions()]
