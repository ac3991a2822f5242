"""A sweep worker: take a queued trial, train it, record the outcome, repeat until no slot is left.

Any number of workers, in this process, in child processes or on other
machines, share one study. A trial whose worker stops (killed, lost its
machine) is found by its silent heartbeat, failed, and queued again by Optuna's
``RetryHeartbeatStaleTrialCallback``, up to ``max_attempts`` in all.

* A database storage (PostgreSQL, MySQL, SQLite) has Optuna's own heartbeat:
  the storage is opened with ``heartbeat_interval`` and ``grace_period``, the
  running trial's worker records its beats with ``storage.record_heartbeat``
  and every worker calls ``optuna.storages.fail_stale_trials``. (Optuna's
  thread that beats for a trial exists only inside ``Study.optimize``; the
  sweep takes its trials one at a time with ask and tell, so it beats itself.)
* A journal file has none: Optuna's heartbeat is for database storages only.
  There a running trial writes a heartbeat counter into its attributes, and a
  worker that sees a counter stand still for the grace period (judged on its
  own clock, so machines' clocks need not agree) fails it and hands it to the
  same callback.
"""

import math
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from kaslite.errors import ConfigError, KasliteError, first_line
from kaslite.sweep.bayes import make_sampler, suggest
from kaslite.sweep.grid import run_slug
from kaslite.sweep.spec import SweepSpec
from kaslite.sweep.storage import is_url, retry_callback
from kaslite.sweep.study import ERROR, HEARTBEAT, METRICS, RUN_SLUG, SLOT, SURPLUS, WALL_TIME, WORKER

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


@attrs.frozen
class WorkerJob:
    """Everything a worker needs; plain data, so it crosses into a spawned process."""

    storage: str
    study_name: str
    spec: SweepSpec
    base_layers: tuple[dict[str, Any], ...]
    trackers: tuple[str, ...]
    tracker_settings: dict[str, Any]
    output_dir: Path
    sweep_id: str
    threads: int | None = None
    heartbeat_s: float = 10.0
    grace_s: float = 60.0
    max_attempts: int = 3
    poll_s: float = 0.5

    @property
    def optuna_heartbeat(self) -> bool:
        """Whether the storage is a database, which has Optuna's heartbeat (a journal file has not)."""
        return is_url(self.storage)


@attrs.frozen
class Outcome:
    """How one trial ended, before it is told to Optuna."""

    state: str  # "complete", "pruned" or "fail"
    value: float | None = None
    error: str | None = None
    metrics: dict[str, Any] = attrs.field(factory=dict)


class Heartbeat:
    """Beats for a running trial every ``interval_s`` seconds until the trial ends.

    With Optuna's heartbeat (a database storage) each beat is
    ``storage.record_heartbeat``; on a journal file it bumps the trial's
    heartbeat counter attribute.
    """

    def __init__(self, study: "optuna.Study", trial: "optuna.Trial", interval_s: float, optuna_heartbeat: bool) -> None:
        self.study = study
        self.trial = trial
        self.interval_s = interval_s
        self.optuna_heartbeat = optuna_heartbeat
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="kaslite-sweep-heartbeat", daemon=True)

    def _beat(self) -> None:
        from optuna.exceptions import UpdateFinishedTrialError

        count = 0
        while True:
            count += 1
            try:
                self._record(count)
            except UpdateFinishedTrialError:
                return  # another worker gave up on this trial; nothing left to keep alive
            except Exception:  # a storage hiccup: the next beat tries again, and the grace period allows for it
                pass
            if self._stop.wait(self.interval_s):
                return

    def _recorder(self) -> Callable[[int], None]:
        if not self.optuna_heartbeat:
            return lambda count: self.trial.set_user_attr(HEARTBEAT, count)
        storage = self.trial.storage
        study_id = storage.get_study_id_from_name(self.study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, self.trial.number)
        return lambda count: storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]

    def __enter__(self) -> "Heartbeat":
        self._record = self._recorder()  # here, so a storage that cannot say the trial's id fails the trial at once
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class StaleWatch:
    """On a journal file: running trials whose heartbeat counter has not moved for ``grace_s`` of our clock."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self._seen: dict[int, tuple[Any, float]] = {}

    def stale(self, trials: list["FrozenTrial"], now: float) -> list["FrozenTrial"]:
        from optuna.trial import TrialState

        found = []
        running = set()
        for trial in trials:
            if trial.state != TrialState.RUNNING or SLOT not in trial.user_attrs:
                continue
            running.add(trial.number)
            beat = trial.user_attrs.get(HEARTBEAT)
            last = self._seen.get(trial.number)
            if last is None or last[0] != beat:
                self._seen[trial.number] = (beat, now)
            elif now - last[1] > self.grace_s:
                found.append(trial)
        self._seen = {number: seen for number, seen in self._seen.items() if number in running}
        return found


def _one_line(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, KasliteError) else first_line(exc)


def give_back(study: "optuna.Study", trial: "FrozenTrial", max_attempts: int) -> bool:
    """Fail a trial whose worker stopped and queue its slot again; False if another worker got there first.

    Only the worker whose state change succeeds queues the retry, so a slot is
    never queued twice however many workers notice the same stale trial.
    """
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        study.tell(trial.number, state=TrialState.FAIL)
    except (ValueError, UpdateFinishedTrialError):
        return False
    retry_callback(max_attempts)(study, trial)  # keeps its grid point, its values and its attributes
    return True


def _discard(study: "optuna.Study", trial: "optuna.Trial") -> None:
    """Close a trial nobody should run: the queue emptied under us, or its slot is already settled."""
    from optuna.trial import TrialState

    trial.set_user_attr(SURPLUS, True)
    study.tell(trial, state=TrialState.FAIL)


def _settled_slots(trials: list["FrozenTrial"]) -> set[int]:
    from optuna.trial import TrialState

    settled = set()
    for trial in trials:
        if SLOT not in trial.user_attrs or trial.user_attrs.get(SURPLUS):
            continue
        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED) or ERROR in trial.user_attrs:
            settled.add(int(trial.user_attrs[SLOT]))
    return settled


def train_trial(trial: "optuna.Trial", job: WorkerJob) -> Outcome:
    """Build the trial's config and train it with the run's trackers plus the sweep's watch."""
    from kaslite.config import build_config
    from kaslite.config.resolve import RUN_FILES_TRACKER
    from kaslite.plugins import TRACKER, get_plugin_manager
    from kaslite.sweep.watch import TrialStopped, TrialWatch, watching
    from kaslite.train.runner import fresh_run_dir, run_experiment

    spec = job.spec
    slot = int(trial.user_attrs[SLOT])
    watch = TrialWatch(trial if spec.pruning != "none" else None, spec.metric)
    # job.trackers is the whole set already: keep the run-files tracker out if the sweep left it out.
    installed = get_plugin_manager().registrations(TRACKER)
    without = [RUN_FILES_TRACKER] if RUN_FILES_TRACKER in installed and RUN_FILES_TRACKER not in job.trackers else []
    try:
        params = suggest(trial, spec)
        slug = fresh_run_dir(job.output_dir, run_slug(slot, params)).name  # a retry here gets its own dir
        trial.set_user_attr(RUN_SLUG, slug)
        config = build_config(*job.base_layers, spec.layer(spec.fixed), spec.layer(params))
        with watching(watch) as watch_name:
            summary = run_experiment(
                config,
                job.output_dir,
                slug,
                trackers=[*job.trackers, watch_name],
                without=without,
                quiet=True,
                tracker_settings=job.tracker_settings,
                labels={"sweep_id": job.sweep_id, "trial": str(slot + 1)},
            )
    except TrialStopped as stop:
        error = None if stop.pruned else stop.reason
        return Outcome("pruned" if stop.pruned else "fail", error=error, metrics=watch.partial_metrics())
    except Exception as exc:
        return Outcome("fail", error=_one_line(exc), metrics=watch.partial_metrics())
    metrics = dict(summary.metrics)
    value = metrics.get(spec.metric)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return Outcome("fail", error=f"{spec.metric} is {value} (nothing to rank the trial by)", metrics=metrics)
    return Outcome("complete", value=float(value), metrics=metrics)


def run_trial(study: "optuna.Study", trial: "optuna.Trial", job: WorkerJob) -> None:
    """Train one claimed trial under a heartbeat and tell Optuna how it ended."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    if job.spec.sampler_seed is not None:
        study.sampler = make_sampler(job.spec, int(trial.user_attrs[SLOT]))
    started = time.perf_counter()
    trial.set_user_attr(WORKER, f"{socket.gethostname()}:{os.getpid()}")
    try:
        with Heartbeat(study, trial, job.heartbeat_s, job.optuna_heartbeat):
            outcome = train_trial(trial, job)
    except KeyboardInterrupt:
        # Interrupted, not failed: the slot goes back to the queue for the next worker.
        give_back(study, study.trials[trial.number], job.max_attempts)
        raise
    try:
        trial.set_user_attr(WALL_TIME, round(time.perf_counter() - started, 3))
        trial.set_user_attr(METRICS, outcome.metrics)
        if outcome.error is not None:
            trial.set_user_attr(ERROR, outcome.error)
        if outcome.state == "complete":
            study.tell(trial, outcome.value)
        else:
            study.tell(trial, state=TrialState.PRUNED if outcome.state == "pruned" else TrialState.FAIL)
    except UpdateFinishedTrialError:
        # Another worker heard no heartbeat for the grace period and queued this slot again.
        print(
            f"kaslite sweep: trial {trial.number} was given up on by another worker while it ran; "
            f"its slot was queued again (run dir kept: {trial.user_attrs.get(RUN_SLUG)})",
            file=sys.stderr,
        )


def work(job: WorkerJob, study: "optuna.Study | None" = None, on_progress: Callable[[], None] | None = None) -> int:
    """Run queued trials until every slot is settled; returns how many this worker ran.

    ``on_progress`` is called after each trial and while waiting on other workers' trials.
    """
    from optuna.storages import fail_stale_trials
    from optuna.trial import TrialState

    from kaslite.sweep.storage import open_storage, require_optuna
    from kaslite.sweep.study import load_existing

    require_optuna()
    if job.threads is not None:
        import torch

        torch.set_num_threads(job.threads)
    if study is None:
        storage = open_storage(job.storage, job.heartbeat_s, job.grace_s, job.max_attempts)
        study = load_existing(storage, job.study_name, job.spec)
    watch = StaleWatch(job.grace_s)
    ran = 0
    while True:
        if job.optuna_heartbeat:
            fail_stale_trials(study)  # and the storage's callback queues them again
            trials = study.get_trials(deepcopy=False)
        else:
            trials = study.get_trials(deepcopy=False)
            for stale in watch.stale(trials, time.monotonic()):
                give_back(study, stale, job.max_attempts)
        ours = [t for t in trials if SLOT in t.user_attrs and not t.user_attrs.get(SURPLUS)]
        if any(t.state == TrialState.WAITING for t in ours):
            trial = study.ask()
            slot = trial.user_attrs.get(SLOT)
            # ask() makes a fresh trial when another worker took the last queued one first; a retry can
            # also outlive its slot when the worker thought dead finishes after all.
            if slot is None or int(slot) in _settled_slots(trials):
                _discard(study, trial)
                continue
            run_trial(study, trial, job)
            ran += 1
            if on_progress is not None:
                on_progress()
        elif any(t.state == TrialState.RUNNING for t in ours):
            if on_progress is not None:
                on_progress()
            time.sleep(job.poll_s)  # stay to retry a trial whose worker dies
        else:
            return ran


def worker_process(job: WorkerJob) -> None:
    """Entry point of a spawned worker process: one ``Error:`` line for a user error, as the CLI does."""
    try:
        work(job)
    except KeyboardInterrupt:
        sys.exit(130)
    except (ConfigError, KasliteError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        sys.exit(2)
    except Exception:
        traceback.print_exc()
        sys.exit(1)


def local_threads(jobs: int) -> int:
    """Torch threads for each of ``jobs`` processes: this machine's cores shared out evenly."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // jobs)
