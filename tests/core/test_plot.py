"""``kaslite plot``: the figure's artists against the run's own files, overlays, sweeps, and bad input."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import kaslite
from kaslite.cli.plot_cmd import load_runs
from kaslite.plot import load_run, load_sweep, run_figure, sweep_figure
from kaslite.plot.runs import RunRecord
from kaslite.testing import invoke, tiny_datasets

TINY = [
    "--problem", "xor", "--n-samples", "160", "--hidden-dim", "8", "--blueprint-hidden", "16",
    "--warm-up-epochs", "3", "--adaptation-epochs", "6", "--controller", "periodic", "--period", "2",
    "--blend-steps", "3", "--progress-thresh", "0", "--batch-size", "16", "--tracker", "json",
]  # fmt: skip
TRANSITION_NAMES = {"training": "germinate", "blending": "blend start", "active": "active", "culled": "cull"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A grown run, its ``--controller never`` twin and an ``expand`` run (scores), as the CLI writes them."""
    manager = kaslite.get_plugin_manager()
    if not manager.has_plugin("tiny"):
        manager.register(tiny_datasets, name="tiny")
    out = tmp_path_factory.mktemp("runs")
    for name, extra in {
        "grown": [],
        "never": ["--controller", "never"],
        "expand": ["--controller", "expand", "--controller-param", "threshold=0", "--patience", "1", "--delta", "1"],
    }.items():
        result = invoke("run", *TINY, *extra, "--output-dir", str(out), "--run-name", name, "-q")
        assert result.exit_code == 0, result.output
    return out


def panels(figure):
    return {ax.get_label(): ax for ax in figure.axes if ax.get_label()}


def by_gid(ax, gid):
    return [artist for artist in ax.get_children() if artist.get_gid() == gid]


def events(run_dir: Path, kind: str) -> list[dict]:
    entries = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return [entry for entry in entries if entry["event"] == kind]


def test_the_figure_draws_the_history_and_marks_every_transition_where_the_events_put_it(runs):
    run = load_run(runs / "grown")
    figure = run_figure([run])
    axes = panels(figure)
    assert list(axes) == ["loss", "accuracy", "parameters", "alpha", "seeds"]  # no scores: periodic measures none
    epochs = list(range(1, 10))
    ((train,), (val,)) = by_gid(axes["loss"], "train_loss:grown"), by_gid(axes["loss"], "val_loss:grown")
    assert list(val.get_xdata()) == epochs and list(val.get_ydata()) == run.column("val_loss")
    assert list(train.get_ydata()) == run.column("train_loss")
    (accuracy,) = by_gid(axes["accuracy"], "val_acc:grown")
    assert list(accuracy.get_ydata()) == run.column("val_acc")

    transitions = events(runs / "grown", "seed_transition")
    assert {t["to_state"] for t in transitions} == {"training", "blending", "active"}
    for to_state in ("training", "blending", "active"):
        (marker,) = by_gid(axes["seeds"], f"transition:grown:{TRANSITION_NAMES[to_state]}")
        assert list(marker.get_xdata()) == [t["epoch"] for t in transitions if t["to_state"] == to_state]
    grown = sorted({t["seed_id"] for t in transitions})
    labels = [label.get_text() for label in axes["seeds"].get_yticklabels()]
    assert labels[: len(run.seed_ids)] == [
        f"{sid} ({next(t['kind'] for t in transitions if t['seed_id'] == sid)})" if sid in grown else sid
        for sid in run.seed_ids
    ]
    assert "seed1_1 (deep)" in labels and "wide_1 (wide)" in labels
    blended = [sid for sid in run.seed_ids if max(run.column(f"{sid}_alpha")) > 0]
    assert blended and set(blended) <= set(grown)
    for seed_id in run.seed_ids:  # α drawn for each seed that blended, as history.csv has it
        lines = by_gid(axes["alpha"], f"alpha:grown:{seed_id}")
        assert [list(line.get_ydata()) for line in lines] == (
            [run.column(f"{seed_id}_alpha")] if seed_id in blended else []
        )

    for ax in axes.values():  # phase 2 begins at epoch 4
        assert [list(line.get_xdata()) for line in by_gid(ax, "phase2")] == [[3.5, 3.5]]
    (step,) = by_gid(axes["parameters"], "params:grown")
    params = list(step.get_ydata())
    metrics = json.loads((runs / "grown" / "metrics.json").read_text())
    assert params == run.column("params") and params[0] == metrics["params_trunk"]
    # The count rises in the epoch after each germination (a seed's child counts from then on).
    rises = [epoch for epoch, before, after in zip(epochs[1:], params, params[1:], strict=False) if after > before]
    germinated = [t["epoch"] + 1 for t in transitions if t["to_state"] == "training"]
    assert rises == [epoch for epoch in germinated if epoch <= 9] and rises


def test_the_never_twin_is_overlaid_in_a_colour_of_its_own_without_transitions(runs):
    figure = run_figure([load_run(runs / "grown"), load_run(runs / "never")])
    axes = panels(figure)
    ((grown,), (never,)) = by_gid(axes["accuracy"], "val_acc:grown"), by_gid(axes["accuracy"], "val_acc:never")
    assert grown.get_label() == "grown" and never.get_label() == "never"
    assert grown.get_color() != never.get_color()
    assert [text.get_text() for text in axes["accuracy"].get_legend().get_texts()] == ["grown", "never"]
    assert by_gid(axes["seeds"], "transition:grown:germinate") and not any(
        str(artist.get_gid()).startswith("transition:never") for artist in axes["seeds"].get_children()
    )
    (never_params,) = [line.get_ydata() for line in by_gid(axes["parameters"], "params:never")]
    assert len(set(never_params)) == 1  # the trunk alone all along
    assert figure.get_suptitle() == "grown vs never"


def test_the_policys_scores_are_drawn_with_a_star_where_it_grew(runs):
    decisions = [d for d in events(runs / "expand", "growth_decision") if d["candidates"]]
    assert decisions
    axes = panels(run_figure([load_run(runs / "expand")]))
    for seed_id in {c["seed_id"] for d in decisions for c in d["candidates"]}:
        (line,) = by_gid(axes["scores"], f"score:expand:{seed_id}")
        expected = [(d["epoch"], c["score"]) for d in decisions for c in d["candidates"] if c["seed_id"] == seed_id]
        assert list(zip(line.get_xdata(), line.get_ydata(), strict=True)) == expected
    (stars,) = by_gid(axes["scores"], "grew:expand")
    chosen = [d["epoch"] for d in decisions for sid in d["chosen"] if sid in {c["seed_id"] for c in d["candidates"]}]
    assert list(stars.get_xdata()) == chosen and chosen


def test_kaslite_plot_writes_the_files_a_user_asks_for(runs, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "figures" / "both.png"
    proc = subprocess.run(
        [sys.executable, "-m", "kaslite", "plot", str(runs / "grown"), str(runs / "never"), "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"wrote {out}\n"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    copy = shutil.copytree(runs / "grown", tmp_path / "grown")
    assert invoke("plot", str(copy)).stdout == f"wrote {copy / 'growth.png'}\n"
    assert (copy / "growth.png").read_bytes()[:4] == b"\x89PNG"
    assert invoke("plot", str(copy), "-o", str(tmp_path / "g.svg")).exit_code == 0
    assert b"<svg" in (tmp_path / "g.svg").read_bytes()[:500]
    assert invoke("plot", str(copy), "-o", str(tmp_path / "g.pdf")).exit_code == 0
    assert (tmp_path / "g.pdf").read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (lambda p: None, ["missing"], "Error: {p}/missing is not a folder\n"),
        (
            lambda p: (p / "empty").mkdir(),
            ["empty"],
            "Error: {p}/empty is not a kaslite run: it has no history.csv (nor checkpoint.pt)\n",
        ),
        (
            lambda p: (p / "header").mkdir() or (p / "header" / "history.csv").write_text("epoch,phase\n"),
            ["header"],
            "Error: {p}/header/history.csv has no epoch yet: nothing to draw\n",
        ),
    ],
)
def test_a_folder_that_is_not_a_run_is_one_line_naming_what_is_missing(tmp_path, make, args, message):
    make(tmp_path)
    result = invoke("plot", *(str(tmp_path / a) for a in args))
    assert result.exit_code == 2 and result.stderr == message.format(p=tmp_path)


def test_runs_of_the_same_name_are_told_apart_by_their_folders(runs, tmp_path):
    for parent in ("a", "b"):
        shutil.copytree(runs / "grown", tmp_path / parent / "grown")
    out = tmp_path / "both.png"
    assert invoke("plot", str(tmp_path / "a" / "grown"), str(tmp_path / "b" / "grown"), "-o", str(out)).exit_code == 0
    assert [run.name for run in load_runs([tmp_path / "a" / "grown", tmp_path / "b" / "grown"])] == [
        "a/grown", "b/grown"
    ]  # fmt: skip
    assert [run.name for run in load_runs([tmp_path / "a" / "grown", runs / "never"])] == ["grown", "never"]


def test_bad_options_are_refused_before_anything_is_drawn(runs, tmp_path):
    bad_suffix = invoke("plot", str(runs / "grown"), "-o", str(tmp_path / "g.jpg"))
    assert bad_suffix.exit_code == 2
    assert (
        bad_suffix.stderr == f"Error: --output {tmp_path / 'g.jpg'}: unknown suffix '.jpg'; allowed: .png, .svg, .pdf\n"
    )
    assert not (tmp_path / "g.jpg").exists()
    colour = invoke("plot", str(runs / "grown"), "--colour-by", "lr")
    assert colour.stderr == "Error: --colour-by applies to a sweep folder only\n"


def test_a_run_in_progress_is_drawn_up_to_its_last_epoch(runs, tmp_path):
    run_dir = shutil.copytree(runs / "grown", tmp_path / "live")
    (run_dir / "metrics.json").unlink()
    lines = (run_dir / "history.csv").read_text().splitlines()
    # Five epochs written, the sixth cut off mid-line by the writer; the same for the events.
    (run_dir / "history.csv").write_text("\n".join(lines[:6]) + "\n" + lines[6][:7])
    with (run_dir / "events.jsonl").open("a") as handle:
        handle.write('{"event": "seed_transition", "epo')
    run = load_run(run_dir)
    assert not run.finished and run.epochs == [1, 2, 3, 4, 5]
    axes = panels(run_figure([run]))
    (val,) = by_gid(axes["loss"], "val_loss:live")
    assert list(val.get_xdata()) == [1, 2, 3, 4, 5]
    assert invoke("plot", str(run_dir)).exit_code == 0


def test_a_run_from_an_older_kaslite_is_drawn(runs, tmp_path):
    # History kept only in the checkpoint, as lists (no history.csv), and rows without a params column.
    run_dir = shutil.copytree(runs / "grown", tmp_path / "old")
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    rows = [{k: v for k, v in row.items() if k != "params"} for row in json.loads(state["history"])]
    state["history"], state["events"] = rows, json.loads(state["events"])
    torch.save(state, run_dir / "checkpoint.pt")
    (run_dir / "history.csv").unlink()
    run = load_run(run_dir)
    assert run.epochs == list(range(1, 10)) and not run.has("params")
    axes = panels(run_figure([run]))
    (final,) = by_gid(axes["parameters"], "params:old")  # only the final count is known
    assert list(final.get_xdata()) == [9] and list(final.get_ydata()) == [run.metrics["params_total"]]
    assert by_gid(axes["seeds"], "transition:old:germinate")


def test_a_checkpoint_that_is_not_kaslites_is_named(tmp_path):
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    result = invoke("plot", str(tmp_path / "r"))
    assert result.exit_code == 2
    assert result.stderr == f"Error: {tmp_path}/r/checkpoint.pt is not a readable kaslite checkpoint: UnpicklingError\n"


def test_a_sweep_figure_has_a_point_per_trial_coloured_by_the_parameter_and_rings_the_best(tmp_path):
    manager = kaslite.get_plugin_manager()
    if not manager.has_plugin("tiny"):
        manager.register(tiny_datasets, name="tiny")
    grid = tmp_path / "grid.yaml"
    grid.write_text("hidden_dim: [2, 4, 8]\n")
    tiny = [arg if arg != "6" else "2" for arg in TINY]
    result = invoke("sweep", str(grid), *tiny, "--output-dir", str(tmp_path / "sweep"))
    assert result.exit_code == 0, result.output
    summary = load_sweep(tmp_path / "sweep")
    figure = sweep_figure(summary)
    (ax,) = [ax for ax in figure.axes if ax.get_label() == "sweep"]
    (points,) = by_gid(ax, "trials")
    trials = summary["trials"]
    assert [tuple(p) for p in points.get_offsets()] == [
        (t["metrics"]["params_total"], t["metrics"]["val_acc"]) for t in trials
    ]
    assert list(points.get_array()) == [2, 4, 8]  # coloured by the swept hidden_dim
    (best,) = by_gid(ax, "best")
    assert [tuple(p) for p in best.get_offsets()] == [
        (summary["best"]["metrics"]["params_total"], summary["best"]["metrics"]["val_acc"])
    ]
    assert invoke("plot", str(tmp_path / "sweep")).stdout == f"wrote {tmp_path / 'sweep' / 'sweep.png'}\n"
    wrong = invoke("plot", str(tmp_path / "sweep"), "--colour-by", "lr")
    assert wrong.stderr == "Error: colour_by 'lr' is not a swept parameter; swept: hidden_dim\n"
    mixed = invoke("plot", str(tmp_path / "sweep"), str(tmp_path))
    assert mixed.stderr == f"Error: {tmp_path / 'sweep'} is a sweep: draw one sweep at a time, without run folders\n"


def test_without_matplotlib_the_command_says_what_to_install(runs, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without the extra sees
    result = invoke("plot", str(runs / "grown"))
    assert result.exit_code == 2
    assert result.stderr == "Error: kaslite plot needs matplotlib: pip install 'kaslite-core[plot]'\n"


def test_a_record_with_nan_losses_draws(tmp_path):
    # A diverged run: NaN losses must not break the log scale.
    rows = tuple(
        {"epoch": e, "phase": 1, "train_loss": math.nan, "val_loss": math.nan, "val_acc": 0.5, "params": 10}
        for e in (1, 2)
    )
    figure = run_figure([RunRecord("nan", rows)])
    assert panels(figure)["loss"].get_yscale() == "linear"
