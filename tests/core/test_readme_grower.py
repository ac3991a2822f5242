"""The growth-driver example in kaslite-core's README runs as printed, and every transition is smooth."""

from .readme import run_recording_transitions


def test_the_readme_example_grows_both_seeds_smoothly(monkeypatch):
    namespace, seen = run_recording_transitions("grower-example", monkeypatch)
    assert {(e.seed_id, e.to_state) for e in seen} == {
        (seed, state) for seed in ("grow1", "grow2") for state in ("training", "blending", "active")
    }
    assert all(e.output_change <= 1e-6 for e in seen), [(e.seed_id, e.to_state, e.output_change) for e in seen]
    assert namespace["val_acc"] > 0.9
