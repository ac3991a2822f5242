"""The width-growth example in kaslite-core's README runs as printed: a user's layer pair grows wider."""

from .readme import run_recording_transitions


def test_the_readme_width_example_grows_a_layer_wider_without_moving_the_output(monkeypatch):
    namespace, seen = run_recording_transitions("width-example", monkeypatch)
    assert [(e.seed_id, e.to_state) for e in seen] == [("0.seed", s) for s in ("training", "blending", "active")]
    assert [e.output_change for e in seen] == [0.0, 0.0, 0.0]
    assert namespace["val_acc"] > 0.9
