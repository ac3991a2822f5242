"""``save_model`` / ``load_model``: architecture + state_dict + seed states in one file.

The file holds only tensors and plain containers, so ``torch.load(path,
weights_only=True)`` reads it: serving a model never unpickles code.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from kaslite.errors import KasliteError

if TYPE_CHECKING:
    from kaslite.nn.network import MorphogeneticNet

FORMAT = "kaslite-model"
FORMAT_VERSION = 1


class ModelFileError(KasliteError):
    """A model file is missing, unreadable or not a kaslite model."""


@attrs.frozen
class LoadedModel:
    """A network ready for inference, with where it came from."""

    net: "MorphogeneticNet"
    metadata: dict[str, Any]
    uri: str
    version: str | None = None


def save_model(net: "MorphogeneticNet", path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Write ``net`` to ``path`` atomically; ``metadata`` must be plain data (str, numbers, lists, dicts)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": net.architecture(),
        "state_dict": net.state_dict(),
        "seeds": {sid: {"state": seed.state.value, "alpha": seed.alpha} for sid, seed in net.seeds.items()},
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(path)
    return path


def read_model_file(path: str | Path) -> dict[str, Any]:
    """The raw payload of a model file, read with ``weights_only=True``."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {str(path)!r} does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"model file {str(path)!r} is not readable: {str(exc).splitlines()[0]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a kaslite model file")
    if payload.get("format_version", 0) > FORMAT_VERSION:
        raise ModelFileError(f"{str(path)!r} was written by a newer kaslite (format {payload['format_version']})")
    return payload


def load_model(path: str | Path) -> "MorphogeneticNet":
    """Rebuild the network saved at ``path``, in eval mode; ``net.metadata`` holds its metadata."""
    import torch

    from kaslite.nn.network import MorphogeneticNet

    payload = read_model_file(path)
    with torch.random.fork_rng(devices=[]):  # building the net must not move the caller's RNG
        net = MorphogeneticNet.from_architecture(payload["architecture"])
    net.load_state_dict(payload["state_dict"])
    net.metadata = dict(payload.get("metadata", {}))
    return net.eval()
