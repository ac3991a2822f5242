"""Builtin model source: ``file`` (a path or ``file://`` URI to a model file)."""

from typing import Any

from kaslite.hookspecs import ModelSourceSpec, hookimpl
from kaslite.models.uri import parse_model_uri


def _path(uri: str) -> str:
    return parse_model_uri(uri).path or uri


def load_file(uri: str) -> Any:
    from kaslite.models import LoadedModel, load_model

    net = load_model(_path(uri))
    return LoadedModel(net=net, metadata=getattr(net, "metadata", {}), uri=uri, version=None)


def list_file_versions(uri: str) -> list[dict[str, Any]]:
    from kaslite.models import read_model_file

    path = _path(uri)
    payload = read_model_file(path)
    return [{"uri": uri, "version": None, "path": path, "metadata": payload.get("metadata", {})}]


@hookimpl
def kaslite_model_sources() -> list[ModelSourceSpec]:
    return [ModelSourceSpec("file", load_file, list_file_versions, "a model file on disk (path or file:// URI)")]
