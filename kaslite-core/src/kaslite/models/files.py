"""``save_model`` / ``load_model``: how to rebuild a network + its state_dict + seed states in one file.

The file holds only tensors and plain containers, so ``torch.load(path,
weights_only=True)`` reads it: serving a model never unpickles code. It holds
what inference needs and nothing of training: a seed's reservoir and shadow
optimizer live in the trainer's checkpoint only.

A file can rebuild its network when the network says how: a
:class:`~kaslite.nn.MorphogeneticNet` (or any module with ``architecture()``
and a ``from_architecture`` classmethod) records that itself; any other
module records its importable class, ``factory="package.module:MyNet"``, with
plain keyword arguments (nothing but a ``torch.nn.Module`` class is ever
called). Without either, load into a module you build yourself:
``load_model(path, model=MyNet())``.

A file also says what its model takes and returns (:mod:`kaslite.models.signature`):
traced from ``example_input`` when given, else read from a kaslite network over
rows. The server reads that, not the network's attributes.
"""

from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from kaslite.errors import KasliteError, message_line
from kaslite.models.signature import Signature, SignatureError, own_signature, traced_signature
from kaslite.names import import_path, imported

if TYPE_CHECKING:
    import torch
    from torch import nn

FORMAT = "kaslite-model"
FORMAT_VERSION = 2
SIGNATURE_ATTRIBUTE = "kaslite_signature"  # where load_model puts the file's signature on the module


class ModelFileError(KasliteError):
    """A model file is missing, unreadable or not a kaslite model."""


@attrs.frozen
class LoadedModel:
    """A network ready for inference, with where it came from."""

    net: "nn.Module"
    metadata: dict[str, Any]
    uri: str
    version: str | None = None

    @property
    def signature(self) -> Signature | None:
        """What the network takes and returns, as its file recorded it (see :func:`signature_of`)."""
        return signature_of(self.net)


def signature_of(net: "nn.Module") -> Signature | None:
    """The signature :func:`load_model` attached to ``net``, else what a kaslite network says of itself."""
    recorded = getattr(net, SIGNATURE_ATTRIBUTE, None)
    return recorded if isinstance(recorded, Signature) else own_signature(net)


def _builder(model: "nn.Module", factory: str | None, factory_kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    if factory is not None:
        if factory.count(":") != 1:
            raise ModelFileError(f"factory {factory!r} must look like 'package.module:MyNet'")
        return {"factory": factory, "kwargs": dict(factory_kwargs or {})}
    cls = type(model)
    if callable(getattr(model, "architecture", None)) and callable(getattr(cls, "from_architecture", None)):
        return {
            "factory": f"{import_path(cls)}.from_architecture",
            "kwargs": {"architecture": model.architecture()},  # type: ignore[operator]
        }
    return None


def save_model(
    model: "nn.Module",
    path: str | Path,
    metadata: dict[str, Any] | None = None,
    *,
    factory: str | None = None,
    factory_kwargs: dict[str, Any] | None = None,
    example_input: "torch.Tensor | None" = None,
) -> Path:
    """Write ``model`` to ``path`` atomically.

    ``metadata`` must be plain data (str, numbers, lists, dicts). ``factory``
    (``"package.module:MyNet"``, or ``"package.module:make"`` for a function annotated
    ``-> nn.Module``; called with ``factory_kwargs``) is how :func:`load_model`
    rebuilds a module that cannot describe itself. ``example_input``, a batch
    of real inputs, is run through the model once (eval mode, no gradients) to
    record the shape and dtype it takes and returns, and a few of its rows:
    what ``kaslite serve`` and MLflow need to serve any module.
    """
    import torch

    from kaslite.nn.modules import find_seeds, unwrap

    model = unwrap(model)
    try:
        signature = traced_signature(model, example_input) if example_input is not None else own_signature(model)
    except SignatureError as exc:
        raise ModelFileError(f"cannot save {type(model).__name__} to {str(path)!r}: {exc}") from None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "builder": _builder(model, factory, factory_kwargs),
        "state_dict": model.state_dict(),
        "seeds": {seed.seed_id: {"state": seed.state.value, "alpha": seed.alpha} for seed in find_seeds(model)},
        "metadata": dict(metadata or {}),
        "signature": signature.as_payload() if signature is not None else None,
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
        raise ModelFileError(f"model file {str(path)!r} is not readable: {message_line(exc)}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{str(path)!r} is not a kaslite model file")
    version = payload.get("format_version", 0)
    if version > FORMAT_VERSION:
        raise ModelFileError(f"{str(path)!r} was written by a newer kaslite (format {version})")
    if version < FORMAT_VERSION:
        raise ModelFileError(
            f"{str(path)!r} is in model format {version}, which this kaslite no longer reads; "
            f"retrain, or load it with the kaslite that wrote it and save it again"
        )
    return payload


def _builds_modules(target: Any) -> bool:
    """A ``torch.nn.Module`` subclass, its ``from_architecture``, or a function annotated to return a
    module (``def make(width: int) -> nn.Module``): what a model file may have kaslite call."""
    import inspect
    import typing

    from torch import nn

    owner = target.__self__ if inspect.ismethod(target) and target.__name__ == "from_architecture" else target
    if inspect.isclass(owner):
        return issubclass(owner, nn.Module)
    if not inspect.isfunction(target):
        return False
    try:
        returned = typing.get_type_hints(target).get("return")
    except Exception:  # an annotation that does not resolve says nothing
        return False
    return inspect.isclass(returned) and issubclass(returned, nn.Module)


def _call_factory(path: Path, builder: dict[str, Any]) -> "nn.Module":
    """Build the module a file names. Only what :func:`_builds_modules` accepts is ever called: a file
    naming anything else (``os:system``...) runs nothing."""
    from torch import nn

    try:
        target: Any = imported(builder["factory"])
    except (ImportError, AttributeError) as exc:
        raise ModelFileError(
            f"model file {str(path)!r} is rebuilt by {builder['factory']!r}, which cannot be imported here "
            f"({type(exc).__name__}: {exc}); install the package that defines it"
        ) from None
    if not _builds_modules(target):
        raise ModelFileError(
            f"model file {str(path)!r} names {builder['factory']!r}, which is not a torch.nn.Module class nor a "
            "function annotated to return one (def make(...) -> nn.Module); kaslite only builds modules"
        )
    model = target(**builder["kwargs"])
    if not isinstance(model, nn.Module):
        raise ModelFileError(f"{builder['factory']!r} built {type(model).__name__}, not a torch.nn.Module")
    return model


def load_model(path: str | Path, model: "nn.Module | None" = None) -> "nn.Module":
    """The network saved at ``path``, in eval mode; ``.metadata`` holds its metadata, and
    :func:`signature_of` what it takes and returns.

    ``model``: load into this module (built the way the saved one was) instead
    of rebuilding it from the file's recipe.
    """
    import torch

    from kaslite.nn.modules import unwrap

    payload = read_model_file(path)
    if model is None:
        builder = payload.get("builder")
        if builder is None:
            raise ModelFileError(
                f"model file {str(path)!r} does not say how to rebuild its network; build it yourself and pass "
                "it: load_model(path, model=MyNet(...)), or save with factory='package.module:function'"
            )
        with torch.random.fork_rng(devices=[]):  # building the net must not move the caller's RNG
            model = _call_factory(Path(path), builder)
    target = unwrap(model)
    try:
        target.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise ModelFileError(
            f"model file {str(path)!r} does not fit {type(target).__name__}: {message_line(exc)}"
        ) from None
    object.__setattr__(target, "metadata", dict(payload.get("metadata", {})))  # plain data, not a submodule
    recorded = payload.get("signature")
    object.__setattr__(target, SIGNATURE_ATTRIBUTE, Signature.from_payload(recorded) if recorded else None)
    return model.eval()
