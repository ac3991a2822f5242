"""What a model URI says: which source serves it, and the registered name inside it."""

from pathlib import Path
from urllib.parse import urlparse

FILE_SCHEME = "file"


def scheme_of(uri: str) -> str:
    """The model source scheme of ``uri``; a bare path is ``file``."""
    scheme = urlparse(uri).scheme
    # A one-letter scheme is a Windows drive ("C:\\models\\a.pt"), not a source.
    return scheme if len(scheme) > 1 else FILE_SCHEME


def registered_name(uri: str) -> str:
    """``kaslite`` for ``models:/kaslite@production``, ``models:/kaslite/3`` or ``models://kaslite``."""
    rest = uri.split(":", 1)[1].lstrip("/")
    for separator in ("@", "/"):
        rest = rest.split(separator, 1)[0]
    return rest


def version_uri(uri: str, version: str) -> str:
    """The registry URI of one version: ``models:/kaslite/3`` for ``models:/kaslite@production``."""
    return f"{scheme_of(uri)}:/{registered_name(uri)}/{version}"


def file_stem(uri: str) -> str:
    """``model`` for ``results/run/model.pt`` or ``file:///x/model.pt``."""
    parsed = urlparse(uri)
    return Path(parsed.path if parsed.scheme == FILE_SCHEME else uri).stem
