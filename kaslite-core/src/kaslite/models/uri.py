"""Model URIs: which model source serves a URI, and what the URI names.

The one parser every model source, the server and its extensions share:

* a bare path or ``file:///abs/model.pt`` is scheme ``file`` with a ``path``
  (``file://localhost/abs/model.pt`` too; ``file://model.pt`` is the relative
  ``model.pt``; ``%20`` and the like are decoded in ``file:`` URIs);
* ``SCHEME:/NAME@ALIAS``, ``SCHEME:/NAME/VERSION`` and ``SCHEME:/NAME`` (the
  MLflow registry's ``models:/`` form, one slash, which any registry-like
  source may use) carry the registered ``name`` and at most one of ``alias``
  and ``version``;
* any other URI of a source's own (``s3://bucket/key.pt``: two slashes, a
  host) keeps its scheme, with no name: that source reads the rest itself.
"""

import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import attrs

from kaslite.errors import ConfigError

FILE_SCHEME = "file"
_REGISTRY_FORM = re.compile(r"^[^:]+:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>[^/@]+))?/?$")


@attrs.frozen
class ModelUri:
    """What a model URI says. Build it with :func:`parse_model_uri`."""

    uri: str
    scheme: str
    path: str | None = None
    name: str | None = None
    alias: str | None = None
    version: str | None = None

    @property
    def is_file(self) -> bool:
        return self.scheme == FILE_SCHEME

    @property
    def label(self) -> str:
        """A short name for people and metrics: the registered name, else the file's stem, else the scheme."""
        if self.is_file:
            return Path(self.path or "").stem or FILE_SCHEME
        return self.name or self.scheme

    def of_version(self, version: str) -> str:
        """The URI of one version of the same registered model: ``models:/kaslite/3``."""
        if self.name is None:
            raise self.invalid()
        return f"{self.scheme}:/{self.name}/{version}"

    def registered(self) -> "ModelUri":
        """This URI, checked to be of the registry form (``SCHEME:/NAME[@ALIAS|/VERSION]``)."""
        if self.name is None:
            raise self.invalid()
        return self

    def invalid(self) -> ConfigError:
        scheme = self.scheme
        return ConfigError(
            f"invalid model URI {self.uri!r}: expected {scheme}:/NAME@ALIAS or {scheme}:/NAME/VERSION "
            f"(e.g. {scheme}:/kaslite@production)"
        )


def scheme_of(uri: str) -> str:
    """The model source scheme of ``uri``; a bare path is ``file``."""
    scheme = urlparse(uri).scheme
    # A one-letter scheme is a Windows drive ("C:\\models\\a.pt"), not a source.
    return scheme if len(scheme) > 1 else FILE_SCHEME


def _file_path(uri: str) -> str:
    """The path a bare path or ``file:`` URI names."""
    parsed = urlparse(uri)
    if parsed.scheme != FILE_SCHEME:
        return uri  # a bare path is taken as it is, '%' and all
    if parsed.netloc in ("", "localhost"):
        return unquote(parsed.path)
    # file://model.pt or file://results/run/model.pt: a relative path, whose first part urlparse calls a host.
    return unquote(parsed.netloc + parsed.path)


def parse_model_uri(uri: str) -> ModelUri:
    """Split ``uri`` into its scheme and what it names; never raises (see :meth:`ModelUri.registered`)."""
    uri = uri.strip()
    scheme = scheme_of(uri)
    if scheme == FILE_SCHEME:
        return ModelUri(uri, scheme, path=_file_path(uri))
    match = _REGISTRY_FORM.match(uri)
    if match is None:
        return ModelUri(uri, scheme)
    return ModelUri(uri, scheme, name=match["name"], alias=match["alias"], version=match["version"])
