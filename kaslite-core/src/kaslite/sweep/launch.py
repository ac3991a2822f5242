"""Run one sweep from this command: open or join its study, run workers, write the summary.

With ``--jobs 1`` the worker runs in this process. With ``--jobs N`` it runs in
N spawned processes (spawned, not forked: a forked child would share the
parent's database connections and torch's thread pools) while this process
watches the study to drive the progress display. Without ``--storage`` the
study lives in a journal file inside the sweep's own directory.
"""

import datetime
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from kaslite.errors import KasliteError
from kaslite.hookspecs import SweepEnd
from kaslite.sweep.grid import slot_count
from kaslite.sweep.progress import SweepProgress
from kaslite.sweep.spec import SweepSpec
from kaslite.sweep.storage import check_workers, open_storage, redact, require_optuna
from kaslite.sweep.study import fingerprint, open_study
from kaslite.sweep.summary import TrialRow, best_row, closing_line, slot_rows, write_summary
from kaslite.sweep.worker import WorkerJob, local_threads, work, worker_process

SWEEPS_ROOT = Path("results") / "sweeps"
JOURNAL = "study.journal"


def _fresh(path: Path) -> Path:
    candidate, suffix = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{suffix}")
        suffix += 1
    return candidate


@attrs.frozen
class SweepPlan:
    """How to run sweeps, from the command line; the same for every sweep file given."""

    base_layers: tuple[dict[str, Any], ...] = ()
    trackers: tuple[str, ...] = ()
    tracker_settings: dict[str, Any] = attrs.field(factory=dict)
    jobs: int = 1
    storage: str | None = None
    study: str | None = None
    # The sweep's own directory when one sweep runs; the parent of one directory per sweep when several do.
    output_dir: Path | None = None
    several: bool = False
    stamp: str = attrs.field(factory=lambda: datetime.datetime.now().strftime("%Y%m%d_%H%M%S"))
    # results/sweeps/<stamp>, or <stamp>-2... when another sweep started in the same second.
    default_root: Path = attrs.field(
        default=attrs.Factory(lambda plan: _fresh(SWEEPS_ROOT / plan.stamp), takes_self=True)
    )
    heartbeat_s: float = 10.0
    grace_s: float = 60.0
    quiet: bool = False
    live: bool | None = None


@attrs.frozen
class SweepResult:
    """Where a sweep wrote its summary, and every slot's row."""

    sweep_dir: Path
    rows: list[TrialRow]

    @property
    def all_failed(self) -> bool:
        return bool(self.rows) and all(row.status == "failed" for row in self.rows)


def _sweep_dir(plan: SweepPlan, spec: SweepSpec) -> Path:
    """Where a new sweep writes: ``--output-dir`` or a dated folder, plus the file's name when several run."""
    root = plan.output_dir if plan.output_dir is not None else plan.default_root
    return root / spec.name if plan.several else root


def _study_name(plan: SweepPlan, spec: SweepSpec) -> str:
    # The default is the file's name, so the same command started again joins the same study.
    if plan.study is None:
        return spec.name
    return f"{plan.study}-{spec.name}" if plan.several else plan.study


def run_sweep(spec: SweepSpec, plan: SweepPlan) -> SweepResult:
    """Run (or join) one sweep to the end and write its summary."""
    require_optuna()
    check_workers(plan.storage or JOURNAL, plan.jobs)
    name = _study_name(plan, spec)
    planned = _sweep_dir(plan, spec)
    target = plan.storage if plan.storage is not None else str(planned / JOURNAL)
    mark = fingerprint(spec, plan.base_layers)
    study, info = open_study(
        open_storage(target, plan.heartbeat_s, plan.grace_s),
        name,
        spec,
        mark,
        f"{name}-{plan.stamp}",
        str(planned),
        redact(target),
    )
    # A worker joining without --output-dir writes beside the first one's files when it shares the machine.
    sweep_dir = planned if info.created or plan.output_dir is not None else Path(info.folder)
    sweep_dir.mkdir(parents=True, exist_ok=True)

    total = slot_count(spec)
    if not plan.quiet:
        how = "joined" if not info.created else f"{spec.method}, {total} trials"
        jobs = f"{plan.jobs} job{'s' if plan.jobs > 1 else ''}"
        print(f"sweep {spec.name} ({how}, {jobs}, study {name!r} in {redact(target)}) -> {sweep_dir}", flush=True)
    job = WorkerJob(
        storage=target,
        study_name=name,
        spec=spec,
        base_layers=plan.base_layers,
        trackers=plan.trackers,
        tracker_settings=plan.tracker_settings,
        output_dir=sweep_dir,
        sweep_id=info.sweep_id,
        threads=None if plan.jobs == 1 else local_threads(plan.jobs),
        heartbeat_s=plan.heartbeat_s,
        grace_s=plan.grace_s,
    )
    progress = SweepProgress(spec, total, quiet=plan.quiet, live=plan.live)

    def rows() -> list[TrialRow]:
        return slot_rows(study.get_trials(deepcopy=False), spec, job.max_attempts)

    exit_codes: list[int] = []
    try:
        if plan.jobs == 1:
            work(job, study, on_progress=lambda: progress.update(rows()))
        else:
            exit_codes = _run_processes(job, plan.jobs, lambda: progress.update(rows()))
    finally:
        final = rows()
        progress.update(final)
        progress.close()
        about = {"sweep_id": info.sweep_id, "study": name, "sweep_file": spec.source}
        write_summary(sweep_dir, spec, final, about)
        announce_end(sweep_end(job, name, final))
    print(closing_line(final, spec, sweep_dir), flush=True)
    failed = [code for code in exit_codes if code != 0]
    if failed:
        raise KasliteError(
            f"{len(failed)} of {len(exit_codes)} worker processes stopped with an error (exit codes "
            f"{', '.join(map(str, failed))}); their messages are above"
        )
    return SweepResult(sweep_dir, final)


def sweep_end(job: WorkerJob, study: str, rows: list[TrialRow]) -> SweepEnd:
    """How the sweep stands as this process stops: finished, failed (every trial), or interrupted."""
    from kaslite.config.resolve import tracker_options

    slots: dict[str, int] = {}
    for row in rows:
        slots[row.status] = slots.get(row.status, 0) + 1
    if not all(row.finished for row in rows):
        status = "interrupted"
    elif rows and all(row.status == "failed" for row in rows):
        status = "failed"
    else:
        status = "finished"
    options = tracker_options(job.trackers, job.tracker_settings)
    spec = job.spec
    best = best_row(rows, spec)
    return SweepEnd(
        job.sweep_id,
        study,
        status,
        slots,
        job.trackers,
        options,
        str(job.output_dir),
        spec.metric,
        spec.direction,
        best.run_slug if best is not None else "",
    )


def announce_end(end: SweepEnd) -> None:
    """Call every plugin's ``kaslite_sweep_end`` under the plugin host's one policy: one that raises is
    reported by name and the others still run."""
    from kaslite.plugins import get_plugin_manager

    get_plugin_manager().call_extensions("kaslite_sweep_end", sweep=end)


def _run_processes(job: WorkerJob, jobs: int, refresh: Callable[[], None]) -> list[int]:
    """Run ``jobs`` worker processes to the end; their exit codes."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=worker_process, args=(job,), name=f"kaslite-sweep-{index}")
        for index in range(1, jobs + 1)
    ]
    for process in processes:
        process.start()
    try:
        while any(process.is_alive() for process in processes):
            refresh()
            time.sleep(0.5)
    finally:
        # On Ctrl-C the children got the signal too and hand their trials back; give them time to.
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
    return [process.exitcode or 0 for process in processes]
