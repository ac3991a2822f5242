"""What a saved model takes and returns, so it can be served without knowing its class.

``save_model(model, path, example_input=batch)`` runs ``batch`` through the
model once and records the shape and dtype of one sample in and one sample
out (the batch axis left out), plus a few of its rows as an example. A
:class:`~kaslite.nn.MorphogeneticNet` over rows of features describes itself
without an example; any other module (a CNN over images, a transformer over
token ids, a user's network) needs one.
"""

from typing import TYPE_CHECKING, Any

import attrs

if TYPE_CHECKING:
    import torch
    from torch import nn

EXAMPLE_ROWS = 5  # rows of the example kept in the file: enough for MLflow's input example

# The dtypes a served model may take, by their torch names.
INPUT_DTYPES = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8")


class SignatureError(ValueError):
    """An example input that cannot describe the model (not a batched tensor, or an output that is not one)."""


@attrs.frozen
class TensorSpec:
    """One sample of a tensor: its shape without the batch axis, and its dtype's torch name."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def size(self) -> int:
        """Values in one sample (the product of ``shape``)."""
        size = 1
        for dim in self.shape:
            size *= dim
        return size

    @property
    def is_integer(self) -> bool:
        return not self.dtype.startswith(("float", "bfloat"))

    def as_dict(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def of(cls, batch: "torch.Tensor") -> "TensorSpec":
        return cls(tuple(int(dim) for dim in batch.shape[1:]), str(batch.dtype).removeprefix("torch."))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TensorSpec":
        return cls(tuple(int(dim) for dim in data["shape"]), str(data["dtype"]))


@attrs.frozen
class Signature:
    """A model's input and output, per sample; ``example`` is a few input rows (a tensor) or None."""

    input: TensorSpec
    output: TensorSpec
    example: Any = attrs.field(default=None, eq=False, repr=False)

    def as_payload(self) -> dict[str, Any]:
        """Plain data and tensors only: what a model file stores (``torch.load(weights_only=True)`` reads it)."""
        return {"input": self.input.as_dict(), "output": self.output.as_dict(), "example": self.example}

    @classmethod
    def from_payload(cls, data: dict[str, Any]) -> "Signature":
        return cls(TensorSpec.from_dict(data["input"]), TensorSpec.from_dict(data["output"]), data.get("example"))

    def example_batch(self) -> "torch.Tensor":
        """The stored example rows, else one sample of zeros of the input's shape and dtype."""
        import torch

        if self.example is not None:
            return self.example  # type: ignore[no-any-return]
        return torch.zeros((1, *self.input.shape), dtype=getattr(torch, self.input.dtype))


def traced_signature(model: "nn.Module", example: Any) -> Signature:
    """Run ``example`` (a batch) through ``model`` in eval mode, without gradients, and record both ends.

    The model's training mode is restored after; in eval mode seeds neither learn nor move.
    """
    import torch

    if not isinstance(example, torch.Tensor) or example.dim() < 1 or len(example) == 0:
        is_tensor = isinstance(example, torch.Tensor)
        got = f"a tensor of shape {tuple(example.shape)}" if is_tensor else type(example).__name__
        raise SignatureError(f"example_input must be a batch: a tensor with a batch axis and ≥ 1 row; got {got}")
    input_spec = TensorSpec.of(example)
    if input_spec.dtype not in INPUT_DTYPES:
        raise SignatureError(f"example_input has dtype {input_spec.dtype}; a served model takes one of {INPUT_DTYPES}")
    was_training = model.training
    device = next((p.device for p in model.parameters()), example.device)
    try:
        model.eval()
        with torch.no_grad():
            output = model(example.to(device))
    finally:
        model.train(was_training)
    if not isinstance(output, torch.Tensor) or output.dim() < 1 or len(output) != len(example):
        got = f"shape {tuple(output.shape)}" if isinstance(output, torch.Tensor) else type(output).__name__
        raise SignatureError(
            f"{type(model).__name__} returned {got} for an example of {len(example)} rows; a saved model must "
            "return one tensor with a row per input row"
        )
    rows = example[:EXAMPLE_ROWS].detach().to("cpu").clone()
    return Signature(input_spec, TensorSpec.of(output), rows)


def own_signature(model: "nn.Module") -> Signature | None:
    """What a kaslite network over rows of features takes and returns, read from the network itself;
    None for any other module (its image size, sequence length or dtype is not known without an example)."""
    input_dim, num_classes = getattr(model, "input_dim", None), getattr(model, "num_classes", None)
    if getattr(model, "trunk", None) != "mlp" or not isinstance(input_dim, int) or not isinstance(num_classes, int):
        return None
    return Signature(TensorSpec((input_dim,), "float32"), TensorSpec((num_classes,), "float32"))
