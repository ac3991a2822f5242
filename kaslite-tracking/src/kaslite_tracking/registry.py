"""The model registry lifecycle on MLflow aliases (stages are deprecated in MLflow 3).

A registered version carries the tags ``val_acc``, ``run_id``, ``problem`` and
``seeds_activated``. Moving an alias (``staging``, ``production``) records the
previous holder and the time on the version that receives it
(``kaslite.<alias>.previous_version``, ``kaslite.<alias>.assigned_at``) and
appends an event to the registered model's tags
(``kaslite.<alias>.history.0001``, ...), so promotion history is kept and a
rollback can hand the alias back to the version that held it before.
"""

import contextlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from kaslite_tracking.store import StoreError, fluent_tracking_uri

ALIASES = ("staging", "production")
VAL_ACC = "val_acc"
FINAL_PREFIX = "final."  # run metrics logged at the end of a run: final.val_acc, final.best_acc, ...


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _error_code(exc: BaseException) -> str:
    return str(getattr(exc, "error_code", ""))


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


@attrs.frozen
class VersionInfo:
    """One registered model version, as kaslite shows it."""

    name: str
    version: str
    aliases: tuple[str, ...]
    val_acc: float | None
    run_id: str | None
    created: datetime
    tags: dict[str, str] = attrs.field(factory=dict)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for ``kaslite serve``'s ``/models`` and JSON output."""
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "val_acc": self.val_acc,
            "run_id": self.run_id,
            "created": self.created.isoformat(timespec="seconds"),
            "uri": self.uri,
            "tags": dict(self.tags),
        }


def version_info(model_version: Any, aliases: dict[str, Any] | None = None) -> VersionInfo:
    """A :class:`VersionInfo` from MLflow's ``ModelVersion``.

    ``aliases`` (the registered model's alias -> version map) is needed for
    versions from ``search_model_versions``, which come without their aliases.
    """
    tags = dict(model_version.tags or {})
    created = datetime.fromtimestamp(model_version.creation_timestamp / 1000, tz=UTC)
    version = str(model_version.version)
    held = set(model_version.aliases or ())
    held.update(alias for alias, holder in (aliases or {}).items() if str(holder) == version)
    return VersionInfo(
        name=model_version.name,
        version=version,
        aliases=tuple(sorted(held)),
        val_acc=_float(tags.get(VAL_ACC)),
        run_id=model_version.run_id or tags.get("run_id") or None,
        created=created,
        tags=tags,
    )


@attrs.frozen
class AliasEvent:
    """One move of an alias: ``promote``, ``auto`` (at the end of a run) or ``rollback``."""

    action: str
    version: str
    previous: str | None
    at: str


class Registry:
    """One registered model in one MLflow store: its versions, aliases and their history."""

    def __init__(self, client: Any, name: str, tracking_uri: str = "") -> None:
        self.client = client
        self.name = name
        self.tracking_uri = tracking_uri

    # -- reading ---------------------------------------------------------------

    def _registered_model(self) -> Any:
        """MLflow's RegisteredModel; a missing one is an error listing those that exist."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_registered_model(self.name)
        except MlflowException as exc:
            if _error_code(exc) != "RESOURCE_DOES_NOT_EXIST":
                raise
        names = sorted(model.name for model in self.client.search_registered_models())
        where = f" in {self.tracking_uri!r}" if self.tracking_uri else ""
        raise StoreError(f"no registered model {self.name!r}{where}; registered models: {', '.join(names) or '(none)'}")

    def versions(self) -> list[VersionInfo]:
        """Every version with its aliases, oldest first."""
        aliases = dict(self._registered_model().aliases or {})
        found = self.client.search_model_versions(f"name = '{self.name}'")
        return sorted((version_info(mv, aliases) for mv in found), key=lambda v: int(v.version))

    def get(self, version: str | int) -> VersionInfo:
        """One version; an unknown one is an error listing those that exist."""
        versions = self.versions()
        for info in versions:
            if info.version == str(version):
                return info
        listing = ", ".join(v.version for v in versions) or "(none)"
        raise StoreError(f"model {self.name!r} has no version {version}; versions: {listing}")

    def holder(self, alias: str) -> VersionInfo | None:
        """The version that holds ``alias`` now, if any."""
        for info in self.versions():
            if alias in info.aliases:
                return info
        return None

    def require_holder(self, alias: str) -> VersionInfo:
        holder = self.holder(alias)
        if holder is None:
            hint = f"; promote one with `kaslite registry promote {alias}`"
            raise StoreError(f"no version of model {self.name!r} holds the alias {alias!r} yet{hint}")
        return holder

    def history(self, alias: str) -> list[AliasEvent]:
        """Every recorded move of ``alias``, oldest first."""
        prefix = f"kaslite.{alias}.history."
        tags = self._registered_model().tags or {}
        events = []
        for key in sorted(k for k in tags if k.startswith(prefix)):
            data = json.loads(tags[key])
            events.append(AliasEvent(data["action"], data["version"], data.get("previous"), data["at"]))
        return events

    def _holders(self, alias: str, current: str | None) -> list[str]:
        """The alias's holders as a stack (latest last): promotions push, rollbacks pop."""
        stack: list[str] = []
        for event in self.history(alias):
            if event.action == "rollback":
                if stack:
                    stack.pop()
                if not stack or stack[-1] != event.version:
                    stack.append(event.version)
                continue
            if event.previous is not None and (not stack or stack[-1] != event.previous):
                stack.append(event.previous)  # held before kaslite recorded anything
            stack.append(event.version)
        if current is not None and (not stack or stack[-1] != current):
            stack.append(current)  # moved outside kaslite (the MLflow UI, say)
        return stack

    def metric(self, info: VersionInfo, metric: str) -> float | None:
        """A version's ``metric``: its tag, else its run's ``final.<metric>``."""
        value = _float(info.tags.get(metric))
        if value is None and info.run_id:
            from mlflow.exceptions import MlflowException

            try:
                value = _float(self.client.get_run(info.run_id).data.metrics.get(FINAL_PREFIX + metric))
            except MlflowException:
                value = None
        return value

    def best(self, metric: str = VAL_ACC, alias: str | None = None) -> tuple[VersionInfo, float]:
        """The version with the highest ``metric`` (the newest on a tie).

        With ``alias``, only versions that hold it or held it before count.
        """
        candidates = self.versions()
        if alias is not None:
            held = {holder.version} if (holder := self.holder(alias)) is not None else set()
            for event in self.history(alias):
                held.update(v for v in (event.version, event.previous) if v is not None)
            candidates = [info for info in candidates if info.version in held]
            if not candidates:
                raise StoreError(f"no version of model {self.name!r} has held the alias {alias!r}")
        scored = [(value, info) for info in candidates if (value := self.metric(info, metric)) is not None]
        if not scored:
            raise StoreError(f"no version of model {self.name!r} has a {metric!r} value")
        value, info = max(scored, key=lambda pair: (pair[0], int(pair[1].version)))
        return info, value

    # -- writing ---------------------------------------------------------------

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(self.name, description="kaslite models")
        except MlflowException as exc:
            if _error_code(exc) not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
                raise

    def register(
        self, model_id: str, run_id: str, val_acc: float | None, problem: str, seeds_activated: int | str
    ) -> VersionInfo:
        """A new version from the logged model ``model_id`` of ``run_id``; without ``val_acc``, no such tag."""
        self._ensure_registered_model()
        tags = {"run_id": run_id, "problem": problem, "seeds_activated": str(seeds_activated)}
        if val_acc is not None:
            tags[VAL_ACC] = repr(float(val_acc))
        # MLflow resolves a models:/ source through its process-wide tracking URI, not the client's:
        # without this, a store given by --tracking-uri registers nothing (and ./mlflow.db appears).
        with fluent_tracking_uri(self.tracking_uri) if self.tracking_uri else contextlib.nullcontext():
            created = self.client.create_model_version(
                self.name, source=f"models:/{model_id}", run_id=run_id, tags=tags, model_id=model_id
            )
        return version_info(self.client.get_model_version(self.name, created.version))

    def move_alias(self, alias: str, version: str, action: str) -> str | None:
        """Give ``alias`` to ``version``, recording the previous holder and the time; returns that holder.

        Giving it to the version that holds it already changes and records nothing.
        """
        current = self.holder(alias)
        previous = current.version if current is not None else None
        if previous == version:
            return previous  # already there: nothing moves, nothing to record
        at = _now()
        self.client.set_registered_model_alias(self.name, alias, version)
        for key, value in {"previous_version": previous or "none", "assigned_at": at, "assigned_by": action}.items():
            self.client.set_model_version_tag(self.name, version, f"kaslite.{alias}.{key}", value)
        prefix = f"kaslite.{alias}.history."
        tags = self._registered_model().tags or {}
        number = 1 + sum(key.startswith(prefix) for key in tags)
        event = {"action": action, "version": version, "previous": previous, "at": at}
        self.client.set_registered_model_tag(self.name, f"{prefix}{number:04d}", json.dumps(event))
        return previous

    def promote(self, alias: str, version: str | int | None = None) -> tuple[VersionInfo, str | None]:
        """Give ``alias`` to ``version`` (default: the best by val_acc); returns it and the previous holder."""
        info = self.get(version) if version is not None else self.best(VAL_ACC)[0]
        return info, self.move_alias(alias, info.version, "promote")

    def rollback(self, alias: str) -> tuple[str, str]:
        """Hand ``alias`` back to its previous holder; returns (restored, replaced)."""
        current = self.require_holder(alias).version
        stack = self._holders(alias, current)
        if len(stack) < 2:
            raise StoreError(
                f"version {current} is the first recorded holder of the alias {alias!r} of model {self.name!r}; "
                "there is nothing to roll back to"
            )
        restored = stack[-2]
        self.get(restored)  # it may have been deleted since
        self.move_alias(alias, restored, "rollback")
        return restored, current

    def register_file(
        self, path: str | Path, val_acc: float | None = None, experiment: str = "kaslite", loaded: Any = None
    ) -> VersionInfo:
        """Register a model file written by ``kaslite.save_model`` (any module saved with an example input):
        logged as a pyfunc model to a new run of ``experiment``, then a new version. ``val_acc`` defaults to
        the file's metadata ``val_acc``, when it has one. ``loaded``: the file as
        :func:`~kaslite_tracking.model_logging.servable` read it, when the caller has already."""
        from kaslite_tracking.model_logging import log_kaslite_model, servable

        path = Path(path)
        # Before any run is created: a file that cannot be served registers nothing.
        loaded = loaded if loaded is not None else servable(path)
        net = loaded[0]
        metadata = dict(getattr(net, "metadata", {}))
        if val_acc is None:
            val_acc = _float(metadata.get(VAL_ACC))
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        run = self.client.create_run(experiment_id, run_name=path.stem, tags={"kaslite.model_file": str(path)})
        run_id = run.info.run_id
        try:
            logged = log_kaslite_model(self.client, self.tracking_uri, experiment_id, run_id, path, loaded)
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_terminated(run_id)
        problem = str(metadata.get("problem", ""))
        return self.register(logged.model_id, run_id, val_acc, problem, metadata.get("seeds_activated", ""))

    def register_run(self, run_id: str, val_acc: float | None = None) -> VersionInfo:
        """Register the model logged by ``run_id`` by hand, whatever its val_acc; aliases are not moved."""
        from mlflow.exceptions import MlflowException

        try:
            run = self.client.get_run(run_id)
        except MlflowException as exc:
            if _error_code(exc) == "RESOURCE_DOES_NOT_EXIST":
                raise StoreError(f"no MLflow run {run_id!r} in {self.tracking_uri!r}") from None
            raise
        outputs = list(run.outputs.model_outputs) if run.outputs is not None else []
        if not outputs:
            raise StoreError(f"run {run_id!r} has no logged model to register")
        model_id = max(outputs, key=lambda output: output.step).model_id
        metrics = run.data.metrics
        if val_acc is None:
            val_acc = _float(metrics.get(FINAL_PREFIX + VAL_ACC))
            if val_acc is None:
                raise StoreError(f"run {run_id!r} has no {FINAL_PREFIX}{VAL_ACC} metric; pass --val-acc")
        problem = run.data.tags.get("kaslite.problem") or run.data.params.get("data.problem", "")
        seeds = metrics.get(FINAL_PREFIX + "seeds_activated")
        return self.register(model_id, run_id, val_acc, problem, int(seeds) if seeds is not None else "")
