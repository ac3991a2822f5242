"""Builtin trackers: ``console`` and ``json`` (both on by default)."""

from typing import Any

from kaslite.hookspecs import TrackerSpec, hookimpl


def console(run: Any) -> Any:
    from kaslite.train.trackers.console import ConsoleTracker

    return ConsoleTracker(quiet=run.quiet)


def run_files(run: Any) -> Any:
    from kaslite.train.trackers.files import RunFilesTracker

    return RunFilesTracker(run.run_dir)


@hookimpl
def kaslite_trackers() -> list[TrackerSpec]:
    return [
        TrackerSpec("console", console, "live dashboard on a terminal, plain lines otherwise", default=True),
        TrackerSpec(
            "json", run_files, "metrics.json, timing.json, history.csv and events.jsonl in the run dir", default=True
        ),
    ]
