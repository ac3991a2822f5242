"""Create or join a sweep's Optuna study, with one queued trial per slot.

A *slot* is one trial the sweep owes: a grid point, or the n-th Bayesian
trial. Whoever creates the study queues every slot as a waiting trial (a grid
point with its values fixed; a Bayesian slot with none, so TPE chooses when it
starts). Workers take waiting trials through Optuna, whose storage hands each
one to exactly one worker, so no slot runs twice. Only the creator queues:
creating a study is atomic in every storage, so two workers starting together
cannot both fill it.
"""

import hashlib
import json
import time
from typing import TYPE_CHECKING, Any

import attrs

from kaslite.config import deep_merge
from kaslite.errors import ConfigError
from kaslite.sweep.bayes import make_pruner, make_sampler
from kaslite.sweep.grid import grid_points
from kaslite.sweep.spec import SweepSpec

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage
    from optuna.trial import FrozenTrial

# Study attributes.
FINGERPRINT = "kaslite.fingerprint"
SWEEP_ID = "kaslite.sweep_id"
FOLDER = "kaslite.folder"
READY = "kaslite.ready"
# Trial attributes.
SLOT = "kaslite.slot"
HEARTBEAT = "kaslite.heartbeat"
RUN_SLUG = "kaslite.run_slug"
METRICS = "kaslite.metrics"
ERROR = "kaslite.error"
WALL_TIME = "kaslite.wall_time_s"
SURPLUS = "kaslite.surplus"
WORKER = "kaslite.worker"


@attrs.frozen
class StudyInfo:
    """What every worker of a sweep agrees on, read from the study."""

    sweep_id: str
    folder: str
    created: bool


def fingerprint(spec: SweepSpec, base_layers: tuple[dict[str, Any], ...]) -> str:
    """A hash of what defines the sweep's trials, so a worker with another config cannot join by mistake."""
    base: dict[str, Any] = {}
    for layer in base_layers:
        base = deep_merge(base, layer)
    # The device may differ between machines without changing what a trial is.
    if isinstance(base.get("train"), dict):
        base["train"] = {key: value for key, value in base["train"].items() if key != "device"}
    shape = {
        "method": spec.method,
        "parameters": {name: attrs.asdict(p) for name, p in spec.parameters.items()},
        "fixed": spec.fixed,
        "trials": spec.trials if spec.method == "bayesian" else None,
        "metric": spec.metric,
        "direction": spec.direction,
        "pruning": spec.pruning,
        "base": base,
    }
    return hashlib.sha256(json.dumps(shape, sort_keys=True, default=str).encode()).hexdigest()[:16]


def queue_slots(study: "optuna.Study", spec: SweepSpec) -> int:
    """Queue one waiting trial per slot; returns how many."""
    if spec.method == "grid":
        points = grid_points(spec)
        for slot, point in enumerate(points):
            study.enqueue_trial(dict(point), user_attrs={SLOT: slot})
        return len(points)
    for slot in range(spec.trials):
        study.enqueue_trial({}, user_attrs={SLOT: slot})
    return spec.trials


def attempt(trial: "FrozenTrial") -> int:
    """Which attempt at its slot ``trial`` is: 1, or one more than the stale trials Optuna queued it for."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    return len(RetryHeartbeatStaleTrialCallback.retry_history(trial)) + 1


def open_study(
    storage: "BaseStorage",
    name: str,
    spec: SweepSpec,
    mark: str,
    sweep_id: str,
    folder: str,
    where: str = "this storage",
    ready_timeout_s: float = 60.0,
) -> tuple["optuna.Study", StudyInfo]:
    """Create study ``name`` and queue its slots, or join it if it exists and was made from the same sweep."""
    import optuna

    direction = (
        optuna.study.StudyDirection.MAXIMIZE if spec.direction == "maximize" else optuna.study.StudyDirection.MINIMIZE
    )
    sampler, pruner = make_sampler(spec), make_pruner(spec)
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=direction, sampler=sampler, pruner=pruner
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=pruner)
        return study, _join(study, name, mark, where, ready_timeout_s)
    study.set_user_attr(FINGERPRINT, mark)
    study.set_user_attr(SWEEP_ID, sweep_id)
    study.set_user_attr(FOLDER, folder)
    queue_slots(study, spec)
    # Joiners wait for this, so none of them sees a half-queued grid and stops early.
    study.set_user_attr(READY, True)
    return study, StudyInfo(sweep_id, folder, created=True)


def load_existing(storage: "BaseStorage", name: str, spec: SweepSpec) -> "optuna.Study":
    """Study ``name`` as a worker process opens it (its creator already queued the slots)."""
    import optuna

    return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec))


def _join(study: "optuna.Study", name: str, mark: str, where: str, timeout_s: float) -> StudyInfo:
    deadline = time.monotonic() + timeout_s
    while not study.user_attrs.get(READY):
        if time.monotonic() > deadline:
            raise ConfigError(
                f"study {name!r} exists but its trials were never all queued (did the worker that created it "
                "die?); start the sweep under another --study name"
            )
        time.sleep(0.2)
    attributes = study.user_attrs
    if attributes.get(FINGERPRINT) != mark:
        raise ConfigError(
            f"study {name!r} in {where} belongs to a different sweep (another sweep file or other options); "
            "use the same file and options to add workers, or another --study (or --output-dir) for a new sweep"
        )
    return StudyInfo(str(attributes[SWEEP_ID]), str(attributes[FOLDER]), created=False)
