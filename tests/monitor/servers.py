"""The real inference server for the monitor's tests: model files, model sources, ``kaslite serve`` processes
(:class:`kaslite_serve.testing.ServeProcess`).

kaslite-serve is installed beside kaslite-monitor for these tests (nox's
``TEST_COMPANIONS``); the monitor itself never imports it.
"""

import urllib.error
import urllib.request
from pathlib import Path

import kaslite
from kaslite.hookspecs import ModelSourceSpec

MODEL_NAME = "xor-net"

# A model source plugin whose registry has no model behind any alias yet (scheme "empty").
EMPTY_REGISTRY = """
    import kaslite
    from kaslite.hookspecs import ModelSourceSpec


    def load(uri):
        raise LookupError(f"nothing is registered behind {uri}")


    @kaslite.hookimpl
    def kaslite_model_sources():
        return [ModelSourceSpec("empty", load, lambda uri: [], "a registry with no model yet (tests)")]
"""


def save_model_file(path: Path, version: str = "1", seed: int = 0) -> Path:
    """A small two-class network of 2 inputs, saved with run name ``xor-net`` and ``version``."""
    import torch

    from kaslite.models import save_model
    from kaslite.nn import MorphogeneticNet

    torch.manual_seed(seed)
    net = MorphogeneticNet(input_dim=2, hidden_dim=8, num_layers=1, seeds_per_layer=1, num_classes=2)
    return save_model(net, path, {"run_name": MODEL_NAME, "version": version})


class Registry:
    """A model source object (scheme ``mem``): versions 1..3 of seeded nets; ``production`` names one, or none."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.production: str | None = None
        for version in ("1", "2", "3"):
            save_model_file(folder / f"{version}.pt", version, seed=int(version))

    def load(self, uri: str):
        from kaslite.models import LoadedModel, load_model, parse_model_uri

        target = parse_model_uri(uri)
        version = self.production if target.alias is not None else target.version
        if version is None:
            raise LookupError(f"no version has alias {target.alias!r}")
        net = load_model(self.folder / f"{version}.pt")
        return LoadedModel(net=net, metadata=net.metadata, uri=uri, version=version)

    def list_versions(self, uri: str):
        return [{"version": v, "uri": f"mem:/{MODEL_NAME}/{v}"} for v in ("1", "2", "3")]

    @kaslite.hookimpl
    def kaslite_model_sources(self):
        return [ModelSourceSpec("mem", self.load, self.list_versions, "versions in a folder (tests)")]


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
