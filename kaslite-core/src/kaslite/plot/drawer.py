"""The run figure's helper process (``python -m kaslite.plot.drawer``): it imports matplotlib and draws
a figure of one made-up epoch at once, on a core the training loop leaves free (the first drawing
loads fonts and costs three times the next), then reads the finished run as one JSON line on stdin
and writes the figure's PNG to stdout. Empty stdin (the run failed): it exits without drawing."""

import json
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaslite.plot.runs import RunRecord


def warm_up_run(epochs: int = 100) -> "RunRecord":
    """A made-up run with every kind of artist a real one has: two phases, a grown seed, a score."""
    from kaslite.plot.runs import RunRecord

    history = tuple(
        {
            "epoch": epoch, "phase": 1 if epoch <= 10 else 2, "train_loss": 1.0 / epoch, "val_loss": 1.2 / epoch,
            "val_acc": 1 - 0.5 / epoch, "params": 100 if epoch <= 20 else 150,
            "seed1_1_state": "dormant" if epoch <= 20 else "active", "seed1_1_alpha": 0.0 if epoch <= 20 else 1.0,
        }
        for epoch in range(1, epochs + 1)
    )  # fmt: skip
    events = (
        {"event": "phase_change", "epoch": 11, "phase": 2, "previous": 1},
        {"event": "growth_decision", "epoch": 20, "chosen": ["seed1_1"],
         "candidates": [{"seed_id": "seed1_1", "kind": "deep", "score": 0.5}]},
        {"event": "seed_transition", "epoch": 20, "seed_id": "seed1_1", "to_state": "training", "kind": "deep"},
        {"event": "seed_transition", "epoch": 21, "seed_id": "seed1_1", "to_state": "active", "kind": "deep"},
    )  # fmt: skip
    return RunRecord("warm-up", history, events)


def main() -> None:
    from kaslite.plot.figure import png_bytes, run_figure  # the slow imports, done while the run trains
    from kaslite.plot.runs import record_of

    png_bytes(run_figure([warm_up_run()]))
    line = sys.stdin.buffer.readline()
    if not line:
        return
    run = json.loads(line)
    record = record_of(run["name"], run["history"], run["events"], run["metrics"])
    sys.stdout.buffer.write(png_bytes(run_figure([record])))
    sys.stdout.buffer.flush()
    os._exit(0)  # the run waits for this process: skip the interpreter's teardown (a tenth of a second)


if __name__ == "__main__":
    main()
