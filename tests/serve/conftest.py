"""Servers for the kaslite-serve tests: real ``kaslite serve`` processes on free loopback ports."""

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest

import kaslite
from kaslite.hookspecs import ModelSourceSpec
from kaslite.testing import fake_distribution
from kaslite_serve.testing import ServeProcess

# A model registry kept in a folder: ROOT/NAME/VERSION.pt plus ROOT/NAME/aliases.json.
# URIs are reg:/NAME@ALIAS and reg:/NAME/VERSION, like MLflow's models:/ URIs.
FOLDER_REGISTRY = """
    import json
    import os
    from pathlib import Path

    import kaslite
    from kaslite.hookspecs import ModelSourceSpec


    def _folder(uri):
        rest = uri.split(":", 1)[1].lstrip("/")
        name = rest.split("@")[0].split("/")[0]
        return name, Path(os.environ["TEST_REGISTRY_ROOT"]) / name, rest[len(name):]


    def load(uri):
        from kaslite.models import LoadedModel, load_model

        name, folder, rest = _folder(uri)
        if rest.startswith("@"):
            aliases = json.loads((folder / "aliases.json").read_text())
            if rest[1:] not in aliases:
                raise LookupError(f"model {name!r} has no version with alias {rest[1:]!r}")
            version = aliases[rest[1:]]
        else:
            version = rest.lstrip("/")
        net = load_model(folder / f"{version}.pt")
        return LoadedModel(net=net, metadata=net.metadata, uri=uri, version=version)


    def list_versions(uri):
        name, folder, _ = _folder(uri)
        versions = sorted((int(p.stem) for p in folder.glob("*.pt")))
        return [{"version": str(v), "uri": f"reg:/{name}/{v}"} for v in versions]


    @kaslite.hookimpl
    def kaslite_model_sources():
        return [ModelSourceSpec("reg", load, list_versions, "a registry in a folder (tests)")]
"""


def build_net(seed: int):
    """A tiny trained-looking network: seed1_1 active, seed2_1 dormant; weights from ``seed``."""
    import torch

    from kaslite.config import SeedConfig
    from kaslite.nn import MorphogeneticNet

    torch.manual_seed(seed)
    net = MorphogeneticNet(2, 8, 2, 1, 3, seed_config=SeedConfig(blend_steps=1))
    seed1 = net.seeds["seed1_1"]
    seed1.germinate()
    seed1.start_blending()
    seed1.advance_blend()
    seed1.activate()
    return net.eval()


def save_net(seed: int, path: Path, **metadata: object) -> Path:
    from kaslite.models import save_model

    return save_model(build_net(seed), path, {"run_name": "demo", **metadata})


def expected(seed: int, rows: list[list[float]]) -> tuple[list[int], list[list[float]]]:
    """What the server must answer for ``rows`` with the net of ``seed``: computed the same way, here."""
    import torch

    net = build_net(seed)
    with torch.inference_mode():
        probabilities = torch.softmax(net(torch.tensor(rows, dtype=torch.float32)), dim=1)
    return probabilities.argmax(dim=1).tolist(), probabilities.tolist()


@attrs.frozen
class Server:
    url: str
    process: ServeProcess

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)

    def output(self) -> str:
        return self.process.output()


@contextlib.contextmanager
def serving(model: str, folder: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``kaslite serve --model MODEL`` on a free port, once its model has loaded (or failed to); SIGTERM on exit."""
    environment = {k: v for k, v in os.environ.items() if k != "KASLITE_ADMIN_TOKEN"}
    environment.update(env or {})
    log = folder / f"server-{len(list(folder.glob('server-*.log')))}.log"
    with ServeProcess(model, *args, env=environment, log=log) as process:
        yield Server(process.url, process)


@pytest.fixture(scope="session")
def served_file(tmp_path_factory) -> Path:
    return save_net(0, tmp_path_factory.mktemp("model") / "model.pt")


@pytest.fixture(scope="session")
def server(served_file, tmp_path_factory) -> Iterator[Server]:
    """One server of a model file (seed 0, version "1"), small caps to test them cheaply."""
    with serving(
        str(served_file), tmp_path_factory.mktemp("server"), "--max-batch-rows", "50", "--max-body-bytes", "20000"
    ) as running:
        yield running


@pytest.fixture
def registry(tmp_path) -> Path:
    """A folder registry holding model ``kaslite`` versions 1..3 (net seeds 1..3), no aliases yet."""
    for version in (1, 2, 3):
        save_net(version, tmp_path / "registry" / "kaslite" / f"{version}.pt")
    (tmp_path / "registry" / "kaslite" / "aliases.json").write_text("{}")
    return tmp_path / "registry"


def set_alias(registry: Path, alias: str, version: str) -> None:
    aliases_file = registry / "kaslite" / "aliases.json"
    aliases = json.loads(aliases_file.read_text())
    aliases_file.write_text(json.dumps({**aliases, alias: version}))


@pytest.fixture
def registry_env(registry, tmp_path) -> dict[str, str]:
    """PYTHONPATH and settings that install the ``reg`` model source as an entry point."""
    site = fake_distribution(
        tmp_path / "site", name="folder-registry", entry_points={"reg": "folder_registry"},
        modules={"folder_registry": FOLDER_REGISTRY},
    )  # fmt: skip
    return {"PYTHONPATH": str(site), "TEST_REGISTRY_ROOT": str(registry)}


class CountingSource:
    """Scheme ``count``: versions 1..5 of seeded nets; counts loads and how many run at once."""

    def __init__(self, delay: float = 0.0) -> None:
        self.loads: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.delay = delay
        self.fail: Exception | None = None  # raised by the next loads, when set
        self.lock = threading.Lock()

    def load(self, uri: str):
        from kaslite.models import LoadedModel

        if self.fail is not None:
            raise self.fail
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(self.delay)
        version = uri.rsplit("/", 1)[1] if "@" not in uri else "1"
        with self.lock:
            self.loads.append(version)
            self.running -= 1
        return LoadedModel(net=build_net(int(version)), metadata={}, uri=uri, version=version)

    def list_versions(self, uri: str):
        return [{"version": v, "uri": f"count:/m/{v}"} for v in ("1", "2", "3", "4", "5")]

    @kaslite.hookimpl
    def kaslite_model_sources(self):
        return [ModelSourceSpec("count", self.load, self.list_versions, "counting test source")]


@pytest.fixture
def counting():
    source = CountingSource()
    kaslite.get_plugin_manager().register(source, name="counting")
    return source
