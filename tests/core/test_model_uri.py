"""One parser for model URIs (kaslite.models.parse_model_uri), shared by every model source and the server."""

import pytest

from kaslite.errors import ConfigError
from kaslite.models import ModelUri, parse_model_uri, scheme_of


@pytest.mark.parametrize(
    ("uri", "scheme", "path", "name", "alias", "version"),
    [
        ("results/run/model.pt", "file", "results/run/model.pt", None, None, None),
        ("/srv/m.pt", "file", "/srv/m.pt", None, None, None),
        ("file:///srv/models/spirals.pt", "file", "/srv/models/spirals.pt", None, None, None),
        ("C:\\models\\a.pt", "file", "C:\\models\\a.pt", None, None, None),
        ("models:/kaslite@production", "models", None, "kaslite", "production", None),
        ("models:/kaslite/3", "models", None, "kaslite", None, "3"),
        ("models:/kaslite/latest", "models", None, "kaslite", None, "latest"),
        ("models:/my-model", "models", None, "my-model", None, None),
        ("models://kaslite", "models", None, None, None, None),  # a host, not a registered name
        ("s3://bucket/key.pt", "s3", None, None, None, None),  # not registered model 'bucket', version 'key.pt'
        ("file://model.pt", "file", "model.pt", None, None, None),
        ("file://results/run/model.pt", "file", "results/run/model.pt", None, None, None),
        ("file://localhost/srv/m.pt", "file", "/srv/m.pt", None, None, None),
        ("file:///srv/my%20model.pt", "file", "/srv/my model.pt", None, None, None),
        ("my%20model.pt", "file", "my%20model.pt", None, None, None),  # a bare path is taken as it is
        ("reg:/kaslite@staging/", "reg", None, "kaslite", "staging", None),
        ("s3://bucket/path/model.pt", "s3", None, None, None, None),  # a source's own form: it reads the rest
        ("models:/kaslite@staging/2", "models", None, None, None, None),
    ],
)
def test_parse(uri, scheme, path, name, alias, version):
    assert parse_model_uri(uri) == ModelUri(uri, scheme, path, name, alias, version)
    assert scheme_of(uri) == scheme


def test_labels_and_version_uris():
    assert parse_model_uri("models:/kaslite@production").label == "kaslite"
    assert parse_model_uri("file:///srv/models/spirals.pt").label == "spirals"
    assert parse_model_uri("results/run/model.pt").label == "model"
    assert parse_model_uri("s3://bucket/path/key.pt").label == "s3"
    assert parse_model_uri("models:/kaslite@production").of_version("4") == "models:/kaslite/4"
    assert parse_model_uri("reg:/kaslite/2").of_version("4") == "reg:/kaslite/4"


def test_a_uri_that_must_be_of_the_registry_form_says_what_is_expected():
    with pytest.raises(ConfigError) as bad:
        parse_model_uri("models:/kaslite@staging/2").registered()
    assert str(bad.value) == (
        "invalid model URI 'models:/kaslite@staging/2': expected models:/NAME@ALIAS or models:/NAME/VERSION "
        "(e.g. models:/kaslite@production)"
    )
    assert parse_model_uri("models:/kaslite/3").registered().version == "3"
