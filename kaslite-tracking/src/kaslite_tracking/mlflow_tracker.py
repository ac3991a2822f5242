"""The ``mlflow`` tracker: one MLflow run per kaslite run, the model, and its registration.

Params: every config field (``seeds.blend_steps``, ...). Metrics per epoch,
with the epoch as step: ``train_loss``, ``val_loss``, ``val_acc``,
``best_acc``, ``seed_alpha.<seed id>``, and ``expansion_score.<seed id>`` for
each candidate of a policy that measures scores; at the end ``final.<name>``
for each final metric. Tags: ``kaslite.phase`` (and
``kaslite.phase<N>_start_epoch``), ``kaslite.seed.<id>`` (latest state),
``kaslite.germination.<id>`` (epoch) and ``kaslite.growth.<id>`` (the epoch whose
decision grew it).
Artifacts: the run dir's config.yaml, history.csv, events.jsonl, metrics.json,
timing.json, the TensorBoard logs under ``tensorboard/``, and the model (see
:mod:`kaslite_tracking.model_logging`). A sweep's trials (``run.labels`` with
``sweep_id``) become children of one parent run per sweep, which stays
RUNNING until the sweep ends (:func:`end_sweep_parent`): FINISHED, or FAILED
when every trial failed. A run stopped before its end is KILLED when the user
interrupted it (Ctrl-C) and FAILED on an error (tag ``kaslite.stopped``), with
every finished epoch logged; ``kaslite run --resume`` continues the same run.

A store that cannot be reached, or fails mid-run, raises one
:class:`~kaslite_tracking.store.StoreError`: the trainer reports it once and
detaches this tracker, and the run completes with its local files.
"""

import contextlib
import getpass
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kaslite.config import flatten
from kaslite.train.events import (
    EpochRecord,
    GrowthDecision,
    ModelReady,
    PhaseChange,
    RunContext,
    RunFailed,
    RunSummary,
    RunWarning,
    SeedTransition,
)
from kaslite.train.tracker import Tracker
from kaslite_tracking.options import MlflowOptions
from kaslite_tracking.store import (
    StoreError,
    check_store,
    first_use_lock,
    mlflow_env,
    resolve_tracking_uri,
    store_errors,
)

logger = logging.getLogger("kaslite.tracking")

RUN_FILES = ("config.yaml", "history.csv", "events.jsonl", "metrics.json", "timing.json")
MAX_PARAMS_PER_CALL = 100  # MLflow's log_batch limits
MAX_METRICS_PER_CALL = 1000
MAX_TAGS_PER_CALL = 100
# Each call to a SQLite store costs ~3-40 ms, about what a small network
# trains in one epoch: epoch metrics and tags are sent together at most this
# often (and at the end), each metric with the time it was recorded.
FLUSH_EVERY_S = 2.0
# Why a run stopped before its end: "interrupted" (Ctrl-C, status KILLED) or the error (status FAILED).
STOPPED_TAG = "kaslite.stopped"
# Run tags: the logged model, and the registered version it became (on a sweep's parent run too).
MODEL_ID = "kaslite.model_id"
REGISTERED_MODEL = "kaslite.registered_model"
REGISTERED_VERSION = "kaslite.registered_version"
REGISTERED_ALIAS = "kaslite.registered_alias"


def _epoch_metrics(values: dict[str, float], epoch: int) -> list[Any]:
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    return [Metric(key, float(value), now, epoch) for key, value in values.items()]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def sweep_parents(client: Any, experiment_id: str, sweep_id: str) -> list[Any]:
    """The parent runs of sweep ``sweep_id`` in the experiment, earliest first (normally one)."""
    query = f"tags.`kaslite.sweep_id` = '{_quote(sweep_id)}' and tags.`kaslite.sweep_parent` = 'true'"
    found = client.search_runs([experiment_id], query, max_results=50)
    return sorted(found, key=lambda r: (r.info.start_time, r.info.run_id))


# How a sweep's end (kaslite.hookspecs.SweepEnd.status) ends its parent run. An interrupted worker leaves it
# RUNNING: workers elsewhere may still be running trials, and starting the sweep again continues it.
SWEEP_STATUS = {"finished": "FINISHED", "failed": "FAILED"}


def end_sweep_parent(sweep: Any) -> None:
    """End the parent run of a sweep whose trials logged to MLflow (the ``kaslite_sweep_end`` hook).

    With ``--register-best``, a finished sweep first registers its best trial's model.
    """
    from mlflow import MlflowClient

    if "mlflow" not in sweep.trackers or sweep.status not in SWEEP_STATUS:
        return
    options: MlflowOptions = sweep.tracker_options.get("mlflow") or MlflowOptions()
    tracking_uri = resolve_tracking_uri(options.tracking_uri)
    with mlflow_env(), store_errors(tracking_uri):
        check_store(tracking_uri)
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment = client.get_experiment_by_name(options.experiment)
        if experiment is None:
            return  # no trial got as far as logging
        parents = sweep_parents(client, str(experiment.experiment_id), sweep.sweep_id)
        if options.register_best and sweep.status == "finished" and parents:
            register_best_trial(client, tracking_uri, options, str(experiment.experiment_id), parents[0], sweep)
        for parent in parents:
            client.set_terminated(parent.info.run_id, SWEEP_STATUS[sweep.status])


def trial_run(client: Any, experiment_id: str, parent_run_id: str, run_name: str) -> Any:
    """The finished MLflow run of the sweep's trial named ``run_name`` (its latest attempt), or None."""
    query = (
        f"tags.`mlflow.parentRunId` = '{_quote(parent_run_id)}' and attributes.status = 'FINISHED' "
        f"and tags.`kaslite.run_name` = '{_quote(run_name)}'"
    )
    runs = client.search_runs([experiment_id], query, order_by=["attributes.start_time DESC"], max_results=1)
    return runs[0] if runs else None


def register_best_trial(
    client: Any, tracking_uri: str, options: MlflowOptions, experiment_id: str, parent: Any, sweep: Any
) -> None:
    """Register the model of a finished sweep's best trial, once, with the thresholds a run uses."""
    # Read afresh: another worker of the sweep may have registered it since the parent was listed.
    if REGISTERED_VERSION in client.get_run(parent.info.run_id).data.tags:
        return
    # The trial the sweep's summary ranks best (one ranking for both), found by its run name.
    best = trial_run(client, experiment_id, parent.info.run_id, sweep.best_trial) if sweep.best_trial else None
    if best is None or MODEL_ID not in best.data.tags:
        return
    if client.search_model_versions(f"run_id = '{_quote(best.info.run_id)}'"):
        return  # registered already, by another worker or before a crash
    metrics = best.data.metrics
    registered = register_model(
        client,
        tracking_uri,
        options,
        model_id=best.data.tags[MODEL_ID],
        run_id=best.info.run_id,
        val_acc=float(metrics["final.val_acc"]),
        problem=best.data.tags.get("kaslite.problem", ""),
        seeds_activated=int(metrics.get("final.seeds_activated", 0)),
    )
    if registered is None:
        print(
            f"kaslite sweep: best trial {best.data.tags.get('kaslite.run_name', best.info.run_id)} not registered: "
            f"val_acc {metrics['final.val_acc']:.4f} is below --register-threshold {options.register_threshold}",
            flush=True,
        )
        return
    tags, info = registered
    for key, value in {**tags, "kaslite.best_trial_run_id": best.info.run_id}.items():
        client.set_tag(parent.info.run_id, key, value)
    for key, value in tags.items():
        client.set_tag(best.info.run_id, key, value)
    alias = f", alias {tags[REGISTERED_ALIAS]}" if REGISTERED_ALIAS in tags else ""
    print(
        f"kaslite sweep: registered the best trial {best.data.tags.get('kaslite.run_name', best.info.run_id)} "
        f"({sweep.metric} {metrics[f'final.{sweep.metric}']:.4f}) as {info.uri}{alias}",
        flush=True,
    )


def register_model(
    client: Any,
    tracking_uri: str,
    options: MlflowOptions,
    *,
    model_id: str,
    run_id: str,
    val_acc: float,
    problem: str,
    seeds_activated: int,
) -> tuple[dict[str, str], Any] | None:
    """Register a logged model when ``val_acc`` reaches the register threshold, and give it the alias
    ``staging`` from the staging threshold. Returns the tags that say so and the version, or None."""
    from kaslite_tracking.registry import Registry

    if not math.isfinite(val_acc) or val_acc < options.register_threshold:
        return None  # NaN (a task without accuracy) never passes a threshold
    registry = Registry(client, options.model_name, tracking_uri)
    info = registry.register(model_id, run_id, val_acc, problem, seeds_activated)
    tags = {REGISTERED_MODEL: info.name, REGISTERED_VERSION: info.version}
    if val_acc >= options.staging_threshold:
        registry.move_alias("staging", info.version, "auto")
        tags[REGISTERED_ALIAS] = "staging"
    return tags, info


class MlflowTracker(Tracker):
    """Mirrors a kaslite run into an MLflow run; logs and registers the trained model."""

    def __init__(self, run: RunContext) -> None:
        self.options: MlflowOptions = run.tracker_options["mlflow"]
        tensorboard = run.tracker_options.get("tensorboard")
        self.tensorboard_dir = Path(tensorboard.tensorboard_dir) / run.run_name if tensorboard is not None else None
        self.config = run.config
        self.labels = dict(run.labels)
        self.tracking_uri = resolve_tracking_uri(self.options.tracking_uri)
        self.client: Any = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.parent_run_id: str | None = None
        self.model_id: str | None = None
        self.model_logging_s: float | None = None
        self.registered: Any = None  # the registry.VersionInfo, when the model was registered
        self.alias: str | None = None  # the alias the registered version got
        self.status = "RUNNING"  # the MLflow run's status as this tracker last set it
        self._pending: list[Any] = []  # epoch metrics not sent yet
        self._pending_tags: dict[str, str] = {}
        self._logged_through = 0  # epochs a resumed run's MLflow run already has
        self._last_flush = time.monotonic()
        self._start_failure: Exception | None = None
        self._ended = False
        self._failed = False

    @contextlib.contextmanager
    def _store(self) -> Iterator[None]:
        """Bounded waits and clear errors; after one failure the tracker stops talking to the store."""
        try:
            with mlflow_env(), store_errors(self.tracking_uri):
                yield
        except Exception:
            self._failed = True
            raise

    # -- the run ---------------------------------------------------------------

    def on_run_start(self, run: RunContext) -> None:
        # A store that cannot be reached is reported at the first epoch rather
        # than here, so the run has begun (and its files exist) when the
        # warning names this tracker as detached.
        try:
            self._start(run)
        except Exception as exc:
            self._start_failure = exc

    def _raise_start_failure(self) -> None:
        if self._start_failure is not None:
            failure, self._start_failure = self._start_failure, None
            raise failure

    def _start(self, run: RunContext) -> None:
        from kaslite.plot.tracking import prepare

        prepare()  # the figure logged at the run's end
        with self._store():
            from mlflow import MlflowClient

            check_store(self.tracking_uri)
            with first_use_lock(self.tracking_uri):  # opening a new store creates its schema
                self.client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
                self.experiment_id = self._experiment()
            if "sweep_id" in self.labels:
                self.parent_run_id = self._sweep_parent(self.labels["sweep_id"])
            run_dir = str(Path(run.run_dir).resolve())
            reused = self._run_to_resume(run_dir) if run.resumed else None
            logged = 0  # epochs the MLflow run has already
            if reused is not None:
                self.run_id = reused
                self.client.update_run(reused, status="RUNNING")
                if STOPPED_TAG in self.client.get_run(reused).data.tags:  # it goes on: no longer stopped
                    self.client.delete_tag(reused, STOPPED_TAG)
                logged = max((m.step for m in self.client.get_metric_history(reused, "val_acc")), default=0)
            else:
                tags = self._tags(run, run_dir)
                self.run_id = self.client.create_run(self.experiment_id, run_name=run.run_name, tags=tags).info.run_id
                self._log_params()
            # A resumed run's earlier epochs that its MLflow run lacks (a killed process sends nothing more).
            for row in run.history:
                if int(row["epoch"]) > logged:
                    self._log_row(row, run.seed_ids)
            # Epochs it has beyond the checkpoint (a policy that raised after its epoch's record) run again
            # from the same state to the same values: they are not logged twice.
            self._logged_through = logged
        self._last_flush = time.monotonic()

    def _experiment(self) -> str:
        from mlflow.exceptions import MlflowException

        name = self.options.experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            try:
                return str(self.client.create_experiment(name))
            except MlflowException as exc:  # another process created it first
                if str(getattr(exc, "error_code", "")) != "RESOURCE_ALREADY_EXISTS":
                    raise
                experiment = self.client.get_experiment_by_name(name)
        if experiment.lifecycle_stage == "deleted":
            raise StoreError(f"MLflow experiment {name!r} is deleted; restore it or choose another --experiment")
        return str(experiment.experiment_id)

    def _sweep_parent(self, sweep_id: str) -> str:
        """The sweep's parent run, created by whichever trial comes first, RUNNING while trials run."""
        existing = sweep_parents(self.client, str(self.experiment_id), sweep_id)
        if existing:
            parent = existing[0]
            if parent.info.status != "RUNNING":  # an interrupted sweep, started again
                self.client.update_run(parent.info.run_id, status="RUNNING")
            return str(parent.info.run_id)
        tags = {"kaslite.sweep_id": sweep_id, "kaslite.sweep_parent": "true"}
        created = self.client.create_run(self.experiment_id, run_name=f"sweep-{sweep_id}", tags=tags)
        # Trials that started together may each have made one: all keep the earliest.
        winner = sweep_parents(self.client, str(self.experiment_id), sweep_id)[0].info.run_id
        if winner != created.info.run_id:
            self.client.delete_run(created.info.run_id)
        return str(winner)

    def _run_to_resume(self, run_dir: str) -> str | None:
        """The MLflow run an interrupted kaslite run in ``run_dir`` was logging to, if any."""
        query = f"tags.`kaslite.run_dir` = '{_quote(run_dir)}'"
        found = self.client.search_runs([self.experiment_id], query, order_by=["attributes.start_time DESC"])
        return str(found[0].info.run_id) if found else None

    def _tags(self, run: RunContext, run_dir: str) -> dict[str, str]:
        tags = {
            "kaslite.run_name": run.run_name,
            "kaslite.run_dir": run_dir,
            "kaslite.problem": run.config.data.problem,
            "kaslite.controller": run.config.controller.name,
            "kaslite.phase": "2" if run.warm_up_epochs == 0 or run.start_epoch > run.warm_up_epochs else "1",
            "mlflow.source.name": "kaslite run",
        }
        with contextlib.suppress(Exception):  # no user name in some containers
            tags["mlflow.user"] = getpass.getuser()
        for key, value in self.labels.items():
            tags[f"kaslite.{key}"] = str(value)
        if self.parent_run_id is not None:
            tags["mlflow.parentRunId"] = self.parent_run_id
        return tags

    def _log_params(self) -> None:
        from mlflow.entities import Param

        params = [Param(key, str(value)) for key, value in flatten(self.config).items()]
        for start in range(0, len(params), MAX_PARAMS_PER_CALL):
            self.client.log_batch(self.run_id, params=params[start : start + MAX_PARAMS_PER_CALL])

    def _log_row(self, row: dict[str, Any], seed_ids: tuple[str, ...]) -> None:
        values = {key: row[key] for key in ("train_loss", "val_loss", "val_acc", "best_acc")}
        for seed_id in seed_ids:
            values[f"seed_alpha.{seed_id}"] = row[f"{seed_id}_alpha"]
        self._pending.extend(_epoch_metrics(values, int(row["epoch"])))

    def _flush(self) -> None:
        from mlflow.entities import RunTag

        metrics, self._pending = self._pending, []
        tags, self._pending_tags = [RunTag(key, value) for key, value in self._pending_tags.items()], {}
        self._last_flush = time.monotonic()
        with self._store():
            while metrics or tags:
                batch, metrics = metrics[:MAX_METRICS_PER_CALL], metrics[MAX_METRICS_PER_CALL:]
                batch_tags, tags = tags[:MAX_TAGS_PER_CALL], tags[MAX_TAGS_PER_CALL:]
                self.client.log_batch(self.run_id, metrics=batch, tags=batch_tags)

    # -- events ----------------------------------------------------------------

    def on_epoch_end(self, record: EpochRecord) -> None:
        self._raise_start_failure()
        if record.epoch <= self._logged_through:
            return
        values = record.metrics()
        for seed in record.seeds:
            values[f"seed_alpha.{seed.seed_id}"] = seed.alpha
        self._pending.extend(_epoch_metrics(values, record.epoch))
        if time.monotonic() - self._last_flush >= FLUSH_EVERY_S:
            self._flush()

    def on_growth_decision(self, event: GrowthDecision) -> None:
        # Each candidate's expansion score as a metric over epochs; what grew, as a tag per seed.
        self._raise_start_failure()
        if event.epoch <= self._logged_through:
            return
        scores = {f"expansion_score.{c.seed_id}": c.score for c in event.candidates}
        self._pending.extend(_epoch_metrics(scores, event.epoch))
        for seed_id in event.chosen:
            self._pending_tags[f"kaslite.growth.{seed_id}"] = str(event.epoch)

    def on_phase_change(self, event: PhaseChange) -> None:
        self._raise_start_failure()
        self._pending_tags["kaslite.phase"] = str(event.phase)
        self._pending_tags[f"kaslite.phase{event.phase}_start_epoch"] = str(event.epoch)

    def on_warning(self, event: RunWarning) -> None:
        self._raise_start_failure()

    def on_seed_transition(self, event: SeedTransition) -> None:
        self._raise_start_failure()
        self._pending_tags[f"kaslite.seed.{event.seed_id}"] = event.to_state
        if event.from_state == "dormant" and event.to_state == "training":
            self._pending_tags[f"kaslite.germination.{event.seed_id}"] = str(event.epoch)

    def on_model_ready(self, event: ModelReady) -> None:
        self._raise_start_failure()
        from kaslite_tracking.model_logging import log_kaslite_model

        with self._store():
            started = time.perf_counter()
            experiment_id, run_id = str(self.experiment_id), str(self.run_id)
            info = log_kaslite_model(self.client, self.tracking_uri, experiment_id, run_id, event.path)
            self.model_logging_s = time.perf_counter() - started
            self.model_id = info.model_id
            self._pending_tags[MODEL_ID] = info.model_id
            self._pending_tags["kaslite.model_logging_s"] = f"{self.model_logging_s:.3f}"
        logger.info("kaslite: logged the model to MLflow run %s in %.2f s", self.run_id, self.model_logging_s)

    def on_run_end(self, summary: RunSummary) -> None:
        self._raise_start_failure()
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        # Tied to the logged model too, so MLflow shows them with the model.
        finals = [
            Metric(f"final.{key}", float(value), now, 0, model_id=self.model_id)
            for key, value in summary.metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        ]
        self._pending.extend(finals)
        with self._store():
            self._log_files(Path(summary.run_dir), summary.metrics)
            self._log_figure(summary)
            # A sweep's trials never register themselves: at most its best one is, when the sweep ends.
            if self.options.register and self.model_id is not None and "sweep_id" not in self.labels:
                self._register(summary.metrics)
        self._flush()
        with self._store():
            self.client.set_terminated(self.run_id, "FINISHED")  # a sweep's parent ends with the sweep
            self._ended = True
            self.status = "FINISHED"

    def _log_figure(self, summary: RunSummary) -> None:
        """The run's figure (``kaslite plot``'s) as the artifact growth.png."""
        import tempfile

        from kaslite.plot.tracking import FIGURE_NAME, summary_png

        png = summary_png(summary)
        if png is None:
            return
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / FIGURE_NAME).write_bytes(png)
            self.client.log_artifact(self.run_id, str(Path(folder) / FIGURE_NAME))

    def _log_files(self, run_dir: Path, metrics: dict[str, Any]) -> None:
        from kaslite.train.trackers.files import run_files_content

        written = run_files_content(metrics)
        for name in RUN_FILES:
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
            elif name in written:  # the json tracker is off, or runs after this one
                self.client.log_dict(self.run_id, written[name], name)
        if self.tensorboard_dir is not None and self.tensorboard_dir.is_dir():
            self.client.log_artifacts(self.run_id, str(self.tensorboard_dir), "tensorboard")

    def _register(self, metrics: dict[str, Any]) -> None:
        registered = register_model(
            self.client,
            self.tracking_uri,
            self.options,
            model_id=str(self.model_id),
            run_id=str(self.run_id),
            val_acc=float(metrics["val_acc"]),
            problem=self.config.data.problem,
            seeds_activated=int(metrics["seeds_activated"]),
        )
        if registered is not None:
            tags, self.registered = registered
            self.alias = tags.get(REGISTERED_ALIAS)
            self._pending_tags.update(tags)

    def on_run_failed(self, event: RunFailed) -> None:
        # Stopped by the user (Ctrl-C): KILLED; stopped by an error: FAILED, with the error as a tag.
        # Either way the epochs it finished are logged, and --resume continues this MLflow run.
        # A run already ended (a stop after on_run_end: its model may be registered) stays FINISHED.
        if self.run_id is None or self._failed or self._ended:
            return
        self.status = "KILLED" if event.interrupted else "FAILED"
        self._pending_tags[STOPPED_TAG] = "interrupted" if event.interrupted else event.error[:500]
        self._flush()
        with self._store():
            self.client.set_terminated(self.run_id, self.status)
            self._ended = True

    def where(self) -> list[str]:
        if self.run_id is None or self._failed:
            return []
        status = "" if self.status == "FINISHED" else f", {self.status}"
        places = [f"MLflow run {self.run_id} in experiment {self.options.experiment!r} ({self.tracking_uri}{status})"]
        if self.registered is not None:
            alias = f", alias {self.alias}" if self.alias else ""
            places.append(f"registered as models:/{self.registered.name}/{self.registered.version}{alias}")
        return places

    def close(self) -> None:
        from kaslite.plot.tracking import release

        release()  # the figure's helper, when the run ended without drawing
        # A run whose driver never sent on_run_end nor on_run_failed; after a
        # store failure there is nothing to tell the store.
        if self.run_id is None or self._ended or self._failed:
            return
        with contextlib.suppress(Exception):
            self._flush()  # the epochs it did finish
            with mlflow_env():
                self.client.set_terminated(self.run_id, "FAILED")
