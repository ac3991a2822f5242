"""The gromo arm of the growth benchmark: a GrowingMLP grown with TINY, as gromo's authors do it.

Peer library: gromo 0.1.0 (PyPI `gromo`, github.com/growingnet/gromo), an optional benchmark
dependency, hence imported inside `train_gromo`. The loop follows gromo's own GrowingContainer
tutorial (examples/plot_growing_container_tutorial.py):

- start tiny: `GrowingMLP(hidden_size=2, number_hidden_layers=hidden_layers)`, gromo's default
  SELU activation (the tutorial's start);
- schedule: cycles of 3 training epochs then one growth step, the growth step counting as one
  epoch (the tutorial's `intermediate_epochs = 3` and its step counter); the last epoch is always
  a training epoch, so 300 epochs = 74 growth steps + 226 training epochs;
- each growth step grows one hidden layer, round-robin (`set_growing_layers(index=step % n)`);
- statistics: `compute_statistics` over the whole training set with a sum-reduced loss;
- `compute_optimal_updates(**TINY)`: the TINY preset that gromo's own docstring of
  `GrowingModule.compute_optimal_updates` gives for reproducing the TINY paper (new neurons from
  the projected gradient, no update of the existing weights), keeping every statistically
  significant neuron (no fixed count per step: gromo decides from the singular values, 1 to 6
  neurons per step here);
- `dummy_select_update()`, then a line search of the scaling factor over [0, 0.1, 0.5, 1] on the
  extended model's mean training loss, then `apply_change()`;
- a fresh optimiser after each growth step, as in the tutorial (growth replaces the weight and
  bias tensors of the two layers it touches, so the old optimiser would keep stepping tensors
  that left the model).

Departures from the tutorial, all shared with the other arms of bench/growth.py: cross-entropy
instead of MSE (classification), Adam instead of SGD, the given batch size for every pass, and
the learning rate annealed over the run on kaslite's cosine schedule (one value per epoch).
The tutorial calls `compute_optimal_updates()` with its defaults, which add the natural-gradient
update of the existing weights (`compute_delta=True`); on spirals-hard that step inflates the
weights (|w| in the hundreds) and every seed ends at chance (val acc 0.48-0.53), so the arm
uses the documented TINY preset instead.
"""

import math
import time
from typing import Any

import torch

SCALING_FACTORS = (0.0, 0.1, 0.5, 1.0)  # the tutorial's line search
INTERMEDIATE_EPOCHS = 3  # training epochs between growth steps (the tutorial's value)
START_WIDTH = 2  # hidden neurons per layer before growth (the tutorial's value)
# gromo's documented hyper-parameters for TINY (GrowingModule.compute_optimal_updates docstring)
TINY = {
    "compute_delta": False,
    "use_covariance": True,
    "alpha_zero": False,
    "omega_zero": False,
    "use_projection": True,
    "ignore_singular_values": False,
}


class ClippedAdam(torch.optim.Adam):
    """Adam that first clips the gradient's global norm to ``max_norm`` (0: not at all), as kaslite's
    trainer does with train.grad_clip: the same recipe inside gromo's own training loop."""

    def __init__(self, params: Any, lr: float, max_norm: float) -> None:
        super().__init__(params, lr=lr)
        self.max_norm = max_norm

    def step(self, closure: Any = None) -> Any:
        if self.max_norm:
            grads = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
            torch.nn.utils.clip_grad_norm_(grads, self.max_norm)
        return super().step(closure)


def train_gromo(
    x_train: torch.Tensor,
    y_train: torch.Tensor,
    x_val: torch.Tensor,
    y_val: torch.Tensor,
    *,
    seed: int,
    epochs: int,
    batch_size: int = 64,
    lr: float = 3e-3,
    hidden_layers: int = 4,
    num_classes: int | None = None,
    cosine: bool = True,
    grad_clip: float = 0.0,
) -> dict[str, Any]:
    """Grow and train a gromo GrowingMLP; return final val accuracy, parameter counts and wall time."""
    from gromo.containers.growing_mlp import GrowingMLP
    from gromo.utils.training_utils import compute_statistics, evaluate_model, gradient_descent

    start = time.perf_counter()
    cpu = torch.device("cpu")
    torch.manual_seed(seed)
    classes = num_classes if num_classes is not None else int(y_train.max().item()) + 1
    model = GrowingMLP(
        in_features=x_train.shape[1],
        out_features=classes,
        hidden_size=START_WIDTH,
        number_hidden_layers=hidden_layers,
        device=cpu,
    )
    train_set = torch.utils.data.TensorDataset(x_train, y_train)
    shuffled = torch.utils.data.DataLoader(
        train_set, batch_size=batch_size, shuffle=True, generator=torch.Generator().manual_seed(seed)
    )
    in_order = torch.utils.data.DataLoader(train_set, batch_size=batch_size)  # growth passes
    loss_mean = torch.nn.CrossEntropyLoss()
    loss_sum = torch.nn.CrossEntropyLoss(reduction="sum")  # gromo's statistics average themselves

    def grow(layer: int) -> None:
        model.set_growing_layers(index=layer)
        compute_statistics(model, in_order, loss_function=loss_sum, device=cpu)
        model.compute_optimal_updates(**TINY)
        model.reset_computation()
        model.dummy_select_update()
        losses = []
        for factor in SCALING_FACTORS:
            model.set_scaling_factor(factor)
            loss, _ = evaluate_model(model, in_order, loss_mean, use_extended_model=True, device=cpu)
            losses.append(loss)
        model.set_scaling_factor(SCALING_FACTORS[losses.index(min(losses))])
        model.apply_change()

    def lr_at(epoch: int) -> float:  # CosineAnnealingLR's value in closed form
        return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2 if cosine else lr

    optimizer = ClippedAdam(model.parameters(), lr, grad_clip)
    params_max = model.number_of_parameters()
    growth_steps = 0
    for epoch in range(epochs):
        if (epoch + 1) % (INTERMEDIATE_EPOCHS + 1) == 0 and epoch < epochs - 1:
            grow(growth_steps % hidden_layers)
            growth_steps += 1
            optimizer = ClippedAdam(model.parameters(), lr, grad_clip)
            params_max = max(params_max, model.number_of_parameters())
        else:
            for group in optimizer.param_groups:
                group["lr"] = lr_at(epoch)
            gradient_descent(model, shuffled, optimizer, scheduler=None, loss_function=loss_mean, device=cpu)

    model.eval()
    with torch.no_grad():
        val_acc = (model(x_val).argmax(dim=1) == y_val).float().mean().item()
    return {
        "val_acc": val_acc,
        "params": model.number_of_parameters(),
        "params_max": params_max,
        "wall_s": time.perf_counter() - start,
    }
