"""The tensorboard tracker's event files, read back with TensorBoard's own event reader."""

import csv
import io
import json

import numpy as np
from PIL import Image

from kaslite.plot import load_run, png_bytes, run_figure
from kaslite.train.runner import run_experiment

from .helpers import read_events, texts, tiny_config, use_tiny_data

SCALARS = {
    "train/loss": "train_loss",
    "validation/loss": "val_loss",
    "validation/accuracy": "val_acc",
    "validation/best_acc": "best_acc",
}


def test_scalars_per_epoch_match_the_history(trained):
    events = read_events(trained.root / "runs" / "shared")
    rows = list(csv.DictReader((trained.run_dir / "history.csv").open()))
    seeds = ["seed1_1", "seed2_1", "wide_1"]
    assert sorted(events.Tags()["scalars"]) == sorted([*SCALARS, *(f"seed/{s}/alpha" for s in seeds)])
    for tag, column in {**SCALARS, **{f"seed/{s}/alpha": f"{s}_alpha" for s in seeds}}.items():
        logged = [(event.step, event.value) for event in events.Scalars(tag)]
        # TensorBoard keeps scalars as float32.
        assert logged == [(int(row["epoch"]), float(np.float32(row[column]))) for row in rows], tag


def test_the_run_figure_is_an_image_at_the_last_epoch(trained):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(trained.root / "runs" / "shared"), size_guidance={"images": 0})
    events.Reload()
    (image,) = events.Images("run/growth")
    expected = Image.open(io.BytesIO(png_bytes(run_figure([load_run(trained.run_dir)])))).convert("RGB")
    assert image.step == 9 and (image.width, image.height) == expected.size
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(image.encoded_image_string))), np.asarray(expected))


def test_phase_and_seed_events_as_text(trained):
    events = read_events(trained.root / "runs" / "shared")
    assert sorted(events.Tags()["tensors"]) == [
        "growth/decisions/text_summary",
        "phase/transitions/text_summary",
        "seed/seed1_1/events/text_summary",
        "seed/seed2_1/events/text_summary",
        "seed/wide_1/events/text_summary",
    ]
    assert texts(events, "phase/transitions") == [(4, "epoch 4: phase 1 (warm-up) → phase 2 (adaptation)")]
    expected = {"seed1_1": [], "seed2_1": [], "wide_1": []}
    for line in (trained.run_dir / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "seed_transition":
            text = (
                f"epoch {event['epoch']}: {event['from_state']} → {event['to_state']} "
                f"(α {event['alpha']:.2f}, output change {event['output_change']:.2e})"
            )
        elif event["event"] == "warning" and event["seed_id"]:
            text = f"epoch {event['epoch']}: {event['message']}"
        else:
            continue
        expected[event["seed_id"]].append((event["epoch"], text))
    germination = "epoch 5: dormant → training (α 0.00, output change 0.00e+00)"
    assert next(text for _, text in expected["seed1_1"] if "→" in text) == germination
    for seed_id, seed_events in expected.items():
        assert texts(events, f"seed/{seed_id}/events") == seed_events
    # The periodic policy measures no scores: one line per germination.
    logged = [json.loads(line) for line in (trained.run_dir / "events.jsonl").read_text().splitlines()]
    grew = [
        (e["epoch"], f"epoch {e['epoch']}: grew {', '.join(e['chosen'])} (scores: no scores)")
        for e in logged
        if e["event"] == "growth_decision"
    ]
    assert texts(events, "growth/decisions") == grew == [(5, "epoch 5: grew seed1_1 (scores: no scores)"), *grew[1:]]


def test_tensorboard_dir_flag_and_run_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    use_tiny_data()
    settings = {"tensorboard_dir": str(tmp_path / "tb")}
    summary = run_experiment(
        tiny_config(), tmp_path / "out", "named", ["tensorboard"], quiet=True, tracker_settings=settings
    )
    (event_file,) = (tmp_path / "tb" / "named").iterdir()
    assert event_file.name.startswith("events.out.tfevents.")
    events = read_events(tmp_path / "tb" / "named")
    assert [e.step for e in events.Scalars("validation/accuracy")] == list(range(1, 10))
    assert events.Scalars("validation/accuracy")[-1].value == float(np.float32(summary.metrics["val_acc"]))
    assert not (tmp_path / "runs").exists()
