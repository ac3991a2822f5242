"""The console tracker: its live dashboard (phase clocks, rate, ETA, drift), transitions and last lines."""

import math

from kaslite.testing import scripted_run
from kaslite.train.events import RunTracked, SeedTransition
from kaslite.train.trackers.console import ConsoleTracker, rate_and_eta, transition_line


def test_each_phase_clock_starts_with_its_phase_and_the_dashboard_shows_rate_eta_and_drift(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setenv("COLUMNS", "200")  # Rich's width off a terminal: no line of the dashboard wraps
    run = scripted_run(tmp_path, warm_up_epochs=2, adaptation_epochs=4)
    tracker = ConsoleTracker(live=True)
    clocks = []  # after each event: (event, phase 1 clock running, phase 2 clock running)
    for method, record in run.calls:
        getattr(tracker, method)(record)
        if tracker.dashboard is not None:
            tasks = [tracker.dashboard.progress.tasks[tracker.dashboard.phase_tasks[phase]] for phase in (1, 2)]
            clocks.append((method, *(task.start_time is not None for task in tasks)))
            rates = [task.fields["rate"] for task in tasks]
    tracker.on_run_tracked(RunTracked(("MLflow run abc", "TensorBoard runs/scripted")))
    tracker.close()

    phase_change = clocks.index(("on_phase_change", True, True))
    assert all(not phase2 for _, _, phase2 in clocks[:phase_change])  # phase 2's clock waits for phase 2
    assert all(phase1 for _, phase1, _ in clocks)
    assert all(rate.endswith(" epochs/s") for rate in rates)  # both phases ran more than one epoch
    out = capsys.readouterr().out
    assert "ETA" in out and "epochs/s" in out
    note = "drift: a blending or active seed's share of the network's output; kaslite warns when it is above"
    assert note in out
    assert "seed1_1 active α=1.00 drift=0.60" in out
    # Transitions and warnings print in full above the display.
    assert "warning: seed1_1 drift 0.600 is above drift_warn 0.5: it makes up 60% of the network's output" in out
    *_, summary, tracked = out.splitlines()
    assert "scripted: val_acc " in summary
    assert tracked == "tracked: MLflow run abc; TensorBoard runs/scripted"


def test_a_failed_run_stops_the_dashboard_and_quiet_prints_no_places(tmp_path, capsys):
    run = scripted_run(tmp_path)
    tracker = ConsoleTracker(live=True)
    tracker.on_run_start(run.context)
    assert tracker.dashboard is not None
    tracker.on_run_failed(None)  # type: ignore[arg-type]
    assert tracker.dashboard is None
    capsys.readouterr()
    quiet = ConsoleTracker(quiet=True, live=False)
    quiet.on_run_tracked(RunTracked(("MLflow run abc",)))
    assert capsys.readouterr().out == ""
    ConsoleTracker(live=False).on_run_tracked(RunTracked(()))  # nothing tracked elsewhere: no line
    assert capsys.readouterr().out == ""


def test_transitions_say_what_happens_and_show_the_output_change_only_when_measured():
    def line(to_state, change, from_state="training"):
        return transition_line(SeedTransition(7, "seed2_1", from_state, to_state, 0.0, change), blend_steps=100)

    assert line("training", 0.0, "dormant") == (
        "epoch 7: seed2_1 germinated: it shadow-trains on its layer's activations, the network's output untouched"
    )
    assert (
        line("blending", 0.0) == "epoch 7: seed2_1 starts blending in (alpha 0 -> 1 over 100 steps); output unchanged"
    )
    assert line("active", 0.0, "blending") == "epoch 7: seed2_1 is active: fully part of the network; output unchanged"
    assert (
        line("culled", 0.0312, "active")
        == "epoch 7: seed2_1 was culled: rolled back to identity; output moved by up to 0.0312"
    )
    # No probe batch (a user's loop without one): nothing measured, nothing claimed.
    assert line("blending", math.nan) == "epoch 7: seed2_1 starts blending in (alpha 0 -> 1 over 100 steps)"


def test_rate_and_eta():
    assert rate_and_eta(0, 100, 0.0) == ""
    assert rate_and_eta(10, 300, 2.0) == "5.0 epochs/s, ETA 0:01:00"
    assert rate_and_eta(1, 7200, 1.0) == "1.0 epochs/s, ETA 2:00:00"
