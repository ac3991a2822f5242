"""Trackers hosted in a helper process: every event arrives in order, failures detach as in-process, and a
helper or a training process that dies loses nothing the other can still do."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kaslite.hookspecs import TrackerSpec
from kaslite.testing import scripted_run
from kaslite.train import tracker_host
from kaslite.train.tracker import Tracker, TrackerGroup

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the helper process is POSIX-only (pipes, signals)")

TRACKERS = '''
import json, os
from pathlib import Path
from kaslite.train.tracker import Tracker

class Recording(Tracker):
    """Writes each call it hears, with the process it runs in, to NAME.jsonl in the run folder."""

    def __init__(self, run, name):
        self.path = Path(run.run_dir) / f"{name}.jsonl"
        self.fail_at = int(os.environ.get(f"FAIL_{name.upper()}_AT", "0"))
        self.write("create", os.getpid())

    def write(self, method, value=None):
        with self.path.open("a") as out:
            out.write(json.dumps([method, value]) + "\\n")

    def on_run_start(self, run):
        self.write("on_run_start", run.run_name)

    def on_epoch_end(self, record):
        if record.epoch == self.fail_at:
            raise ValueError(f"no epoch {record.epoch} today")
        self.write("on_epoch_end", record.epoch)

    def on_seed_transition(self, event):
        self.write("on_seed_transition", event.seed_id)

    def on_run_end(self, summary):
        self.write("on_run_end", summary.run_name)

    def where(self):
        return [f"recorded in {self.path.name}"]

    def close(self):
        self.write("close")

def first(run):
    return Recording(run, "first")

def second(run):
    return Recording(run, "second")

def warm_up():
    Path(os.environ["WARMED"]).write_text(str(os.getpid()))
'''


@pytest.fixture
def hosted_module(tmp_path, monkeypatch):
    """The trackers above, importable by the helper process (it inherits PYTHONPATH)."""
    folder = tmp_path / "plugin"
    folder.mkdir()
    (folder / "hosted_trackers.py").write_text(TRACKERS)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(folder), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(folder))
    import hosted_trackers

    return hosted_trackers


def calls(path: Path) -> list[list]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def specs(module, **own_process):
    return {
        name: TrackerSpec(name, getattr(module, name), own_process=own_process.get(name, True))
        for name in ("first", "second")
    }


def drive(group: TrackerGroup, run) -> None:
    for method, record in run.calls:
        group.emit(method, record)
    group.announce_places(6)
    group.close()


def test_hosted_trackers_hear_every_event_in_order_in_another_process(tmp_path, hosted_module):
    run = scripted_run(tmp_path)
    trackers = tracker_host.make_trackers(specs(hosted_module, second=False), run.context, host=True)
    assert isinstance(trackers["first"], tracker_host.HostedTracker)
    assert isinstance(trackers["second"], hosted_module.Recording)  # its spec keeps it here
    places = []

    class Places(Tracker):
        def on_run_tracked(self, event):
            places.extend(event.places)

    group = TrackerGroup({**trackers, "places": Places()})
    for method, record in run.calls:
        group.emit(method, record)
    group.announce_places(6)
    group.close()

    away, here = calls(tmp_path / "first.jsonl"), calls(tmp_path / "second.jsonl")
    assert away[0][1] != os.getpid() and here[0][1] == os.getpid()
    assert [call[0] for call in away[1:]] == [call[0] for call in here[1:]]  # the same events, in the same order
    assert away[1:] == here[1:] and away[-1] == ["close", None]
    assert [epoch for method, epoch in away if method == "on_epoch_end"] == list(range(1, 7))
    assert places == ["recorded in first.jsonl", "recorded in second.jsonl"]  # where() answered from the helper
    assert group.detached == {}


def test_a_tracker_that_raises_in_the_helper_is_detached_and_the_others_go_on(tmp_path, hosted_module, monkeypatch):
    monkeypatch.setenv("FAIL_FIRST_AT", "3")
    run = scripted_run(tmp_path)
    group = TrackerGroup(tracker_host.make_trackers(specs(hosted_module), run.context, host=True))
    drive(group, run)
    assert list(group.detached) == ["first"]
    assert group.detached["first"] == "ValueError: no epoch 3 today"
    first = [call[0] for call in calls(tmp_path / "first.jsonl")]
    assert first.count("on_epoch_end") == 2 and "on_run_end" not in first  # detached: nothing more reached it
    assert first[-1] == "close"  # but it was closed, as a tracker detached in-process is
    second = calls(tmp_path / "second.jsonl")
    assert [epoch for method, epoch in second if method == "on_epoch_end"] == list(range(1, 7))
    assert second[-1] == ["close", None]


def test_a_helper_that_dies_detaches_its_trackers_and_the_run_goes_on(tmp_path, hosted_module):
    run = scripted_run(tmp_path)
    trackers = tracker_host.make_trackers(specs(hosted_module, second=False), run.context, host=True)
    group = TrackerGroup(trackers)
    group.emit(*run.calls[0])
    trackers["first"].host.wait()
    trackers["first"].host.process.kill()
    for method, record in run.calls[1:]:
        group.emit(method, record)
    group.announce_places(6)
    group.close()
    assert "exited" in group.detached["first"] or "gone" in group.detached["first"]
    assert calls(tmp_path / "second.jsonl")[-1] == ["close", None]


def test_the_helper_starts_early_warms_up_and_serves_the_run(tmp_path, hosted_module, monkeypatch):
    monkeypatch.setenv("WARMED", str(tmp_path / "warmed"))
    spec = TrackerSpec("first", hosted_module.first, own_process=True, warm_up=hosted_module.warm_up)
    tracker_host.start([spec])
    early = tracker_host._started
    run = scripted_run(tmp_path)
    trackers = tracker_host.make_trackers({"first": spec}, run.context, host=True)
    assert trackers["first"].host is early and tracker_host._started is None
    drive(TrackerGroup(trackers), run)
    assert (tmp_path / "warmed").read_text() == str(calls(tmp_path / "first.jsonl")[0][1])  # the same process


def test_a_killed_training_process_leaves_the_helper_to_close_its_trackers(tmp_path, hosted_module):
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        import hosted_trackers
        from kaslite.hookspecs import TrackerSpec
        from kaslite.testing import scripted_run
        from kaslite.train import tracker_host

        run = scripted_run(Path({str(tmp_path)!r}))
        spec = TrackerSpec("first", hosted_trackers.first, own_process=True)
        tracker = tracker_host.make_trackers({{"first": spec}}, run.context, host=True)["first"]
        for method, record in run.calls[:4]:
            getattr(tracker, method)(record)
        tracker.host.wait()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", script], env=os.environ.copy(), timeout=120)
    assert killed.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30  # the helper reads the end of its input and closes what it hosts
    while calls(tmp_path / "first.jsonl")[-1][0] != "close" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert calls(tmp_path / "first.jsonl")[-1] == ["close", None]
