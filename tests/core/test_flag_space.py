"""One flag space: plugin parameters cannot silently shadow or lose each other's values."""

import re
import warnings

import pytest
import yaml

import kaslite
from kaslite.testing import fake_distribution, invoke

TINY = [
    "--problem", "xor", "--n-samples", "64", "--hidden-dim", "4", "--warm-up-epochs", "1",
    "--adaptation-epochs", "1", "--batch-size", "32", "-q",
]  # fmt: skip

NOISY_TRACKER = """
    import attrs
    import kaslite
    from kaslite.hookspecs import TrackerSpec

    @attrs.frozen
    class NoisyOptions:
        noise: float = 0.0

    @kaslite.hookimpl
    def kaslite_trackers():
        return [TrackerSpec("noisy", lambda run: None, "an option named noise", options_type=NoisyOptions)]
"""

LR_DATASET = """
    import attrs
    import kaslite
    from kaslite.hookspecs import DatasetSpec

    @attrs.frozen
    class LrParams:
        lr: float = 0.1

    @kaslite.hookimpl
    def kaslite_datasets():
        return [DatasetSpec("lr-data", LrParams, lambda params, seed: None, "a dataset with a parameter named lr")]
"""

RING_DATASET = """
    import attrs
    import kaslite
    from kaslite.hookspecs import DatasetSpec

    @attrs.frozen
    class RingParams:
        n_samples: int = attrs.field(default=1000, metadata={"help": "points on the ring"})

    @kaslite.hookimpl
    def kaslite_datasets():
        return [DatasetSpec("ring", RingParams, lambda params, seed: None, "a ring")]
"""

NOTE_TRACKER = """
    import attrs
    import kaslite
    from kaslite.hookspecs import TrackerSpec
    from kaslite.train import Tracker
    from kaslite.config.validation import integer_at_least

    @attrs.frozen
    class NoteOptions:
        note_file: str = attrs.field(default="note.txt", metadata={"help": "where the note goes"})
        note_every: int = attrs.field(default=1, validator=integer_at_least(1))
        note_loud: bool = False

    class NoteTracker(Tracker):
        def __init__(self, run):
            self.options = run.tracker_options["note"]

        def on_run_end(self, summary):
            with open(self.options.note_file, "w") as f:
                f.write(f"{self.options.note_every} {self.options.note_loud} {summary.metrics['epochs']}")

    @kaslite.hookimpl
    def kaslite_trackers():
        return [TrackerSpec("note", NoteTracker, "writes a note", options_type=NoteOptions)]
"""


@pytest.fixture
def install(tmp_path, monkeypatch):
    """``install(name, source)``: a distribution ``name`` whose entry point ``name`` is that module; xor too."""
    fake_distribution(tmp_path / "tiny", name="tiny-data", entry_points={"tiny": "kaslite.testing:tiny_datasets"})
    monkeypatch.syspath_prepend(str(tmp_path / "tiny"))

    def add(name: str, source: str) -> None:
        module = f"{name.replace('-', '_')}_{abs(hash(str(tmp_path))) % 10**8}"
        fake_distribution(tmp_path / name, name=name, entry_points={name: module}, modules={module: source})
        monkeypatch.syspath_prepend(str(tmp_path / name))
        kaslite.reset_plugin_manager()

    return add


def test_kaslite_reserves_every_flag_of_run_and_sweep():
    from kaslite.cli.run_cmd import run
    from kaslite.cli.sweep_cmd import sweep
    from kaslite.config.flagspace import COMMAND_FLAGS, reserved_flags

    for command in (run, sweep):
        own = {opt for param in command.own_params for opt in param.opts + param.secondary_opts if opt.startswith("--")}
        assert own <= set(reserved_flags()), own - set(reserved_flags())
    assert "--help" in COMMAND_FLAGS


def test_a_tracker_option_colliding_with_a_dataset_flag_is_refused_and_the_value_reaches_the_dataset(install, tmp_path):
    install("noisy-tracker", NOISY_TRACKER)
    listing = invoke("plugins")
    refusal = (
        "registered tracker 'noisy': its option noise would be the flag --noise, "
        "which is already parameter noise of dataset 'xor'; rename the option"
    )
    assert f"    error: {refusal}\n" in listing.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # click warns about a flag defined twice
        result = invoke("run", *TINY, "--noise", "0.2", "--tracker", "json", "--output-dir", str(tmp_path))
    assert result.exit_code == 0, result.output
    (config,) = tmp_path.glob("*/config.yaml")
    assert yaml.safe_load(config.read_text())["data"]["params"]["noise"] == 0.2

    used = invoke("run", *TINY, "--tracker", "noisy", "--output-dir", str(tmp_path / "noisy"))
    assert used.exit_code == 1
    assert used.stderr == (
        "Error: tracker 'noisy' of plugin 'noisy-tracker' (noisy-tracker 1.0) was refused: its option noise would "
        "be the flag --noise, which is already parameter noise of dataset 'xor'; rename the option\n"
    )


def test_a_dataset_parameter_named_like_a_kaslite_flag_is_refused(install, tmp_path):
    install("lr-data", LR_DATASET)
    result = invoke("run", *TINY, "--problem", "lr-data", "--output-dir", str(tmp_path / "lr"))
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: dataset 'lr-data' of plugin 'lr-data' (lr-data 1.0) was refused: its parameter lr would be the "
        "flag --lr, which is already kaslite's own flag for train.lr; rename the parameter\n"
    )
    trained = invoke("run", *TINY, "--lr", "0.01", "--tracker", "json", "--output-dir", str(tmp_path / "ok"))
    assert trained.exit_code == 0, trained.output
    (config,) = (tmp_path / "ok").glob("*/config.yaml")
    assert yaml.safe_load(config.read_text())["train"]["lr"] == 0.01


def test_help_shows_each_plugins_defaults_and_help_text(install):
    install("ring-data", RING_DATASET)
    install("note-tracker", NOTE_TRACKER)
    text = " ".join(invoke("run", "--help").stdout.split())  # undo click's wrapping
    (defaults,) = re.findall(
        r"--n-samples, --n_samples INTEGER Dataset parameter n_samples \(same as "
        r"--dataset-param n_samples=VALUE\); default: ([^.]*)\.",
        text,
    )
    assert {"ring 1000", "xor 200"} <= set(defaults.split(", "))  # and those of other installed datasets
    assert "--note-file, --note_file TEXT where the note goes [tracker note; default: 'note.txt']" in text
    assert "--note-loud / --no-note-loud [tracker note; default: False]" in text
    datasets = invoke("datasets").stdout
    assert "ring: a ring\n    --n-samples (int, default 1000): points on the ring\n" in datasets
    plugins = invoke("plugins").stdout
    assert (
        "    kaslite_trackers: note\n        note: note_file (str, default 'note.txt'): where the note goes; "
        "note_every (int, default 1); note_loud (bool, default False)\n" in plugins
    )


def test_tracker_adds_to_the_run_files_and_no_tracker_removes(install, tmp_path):
    install("note-tracker", NOTE_TRACKER)
    note = tmp_path / "note.txt"
    base = ["run", *TINY, "--tracker", "note", "--note-file", str(note)]
    result = invoke(*base, "--note-every", "3", "--note-loud", "--output-dir", str(tmp_path / "a"))
    assert result.exit_code == 0, result.output
    assert note.read_text() == "3 True 2"
    (run_dir,) = (tmp_path / "a").iterdir()
    assert {"metrics.json", "history.csv", "events.jsonl"} <= {p.name for p in run_dir.iterdir()}

    without = invoke(*base, "--no-tracker", "json", "--output-dir", str(tmp_path / "b"))
    assert without.exit_code == 0, without.output
    (run_dir,) = (tmp_path / "b").iterdir()
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "history.csv").exists()

    bad = invoke(*base, "--note-every", "0", "--output-dir", str(tmp_path / "c"))
    assert bad.exit_code == 2
    assert bad.stderr == "Error: invalid note tracker.note_every = 0: must be an integer >= 1\n"
