"""Final metrics of a run, computed from its history and events."""

from typing import Any


def growth_response(history: list[dict[str, Any]], first_germination: int | None) -> tuple[float, int | None]:
    """(accuracy dip, recovery time) after the first germination.

    The dip is how far validation accuracy fell below its value at the
    germinating epoch before it got back there; recovery time is how many
    epochs that took (0 if it never fell, None if it never got back).
    """
    if first_germination is None:
        return 0.0, None
    by_epoch = {row["epoch"]: row["val_acc"] for row in history}
    reference = by_epoch.get(first_germination)
    if reference is None:
        return 0.0, None
    lowest = reference
    for epoch in sorted(e for e in by_epoch if e > first_germination):
        if by_epoch[epoch] >= reference:
            return reference - lowest, epoch - first_germination if lowest < reference else 0
        lowest = min(lowest, by_epoch[epoch])
    return reference - lowest, None if lowest < reference else 0


def final_metrics(
    history: list[dict[str, Any]],
    events: list[dict[str, Any]],
    warm_up_epochs: int,
    seed_states: dict[str, str],
    params: tuple[int, int],
    wall_time_s: float,
) -> dict[str, Any]:
    """The metrics.json payload."""
    last = history[-1]
    phase1 = [row["val_acc"] for row in history if row["phase"] == 1]
    germinations = [e["epoch"] for e in events if e["event"] == "seed_transition" and e["to_state"] == "training"]
    dip, recovery = growth_response(history, min(germinations) if germinations else None)
    return {
        "best_acc": max(row["val_acc"] for row in history),
        "val_acc": last["val_acc"],
        "val_loss": last["val_loss"],
        "train_loss": last["train_loss"],
        "phase1_best_acc": max(phase1) if phase1 else None,
        "accuracy_dip": dip,
        "recovery_time": recovery,
        "seeds_activated": sum(state == "active" for state in seed_states.values()),
        "total_seeds": len(seed_states),
        "params_trunk": params[0],
        "params_total": params[1],
        "epochs": last["epoch"],
        "warm_up_epochs": warm_up_epochs,
        "wall_time_s": round(wall_time_s, 3),
    }
