"""What a run uses, resolved before any work starts: plugin parameters with their defaults, and trackers.

Nothing here imports torch, so ``kaslite run`` refuses a bad value in a
fraction of a second. ``config.yaml`` stores the resolved parameters, so it
reproduces the run even after a plugin changes a default.
"""

from collections.abc import Iterable
from typing import Any

import attrs

from kaslite.config import ControllerConfig, DataConfig, ExperimentConfig, ModelConfig
from kaslite.config.structure import structure, unstructure
from kaslite.errors import ConfigError
from kaslite.plugins import BLUEPRINT, CONTROLLER, DATASET, TRACKER, get_plugin_manager

# The tracker that writes the run's own files (metrics.json, history.csv, events.jsonl): it stays
# when --tracker names others, and goes only when --no-tracker names it.
RUN_FILES_TRACKER = "json"


def dataset_params(data: DataConfig) -> Any:
    """The dataset's validated parameter object; an error names the dataset, its plugin and the parameter."""
    return get_plugin_manager().validate_params(DATASET, data.problem, data.params)


def controller_options(controller: ControllerConfig) -> dict[str, Any]:
    """The controller's own parameters, validated by its ``params_type`` (defaults filled in) when it has one."""
    manager = get_plugin_manager()
    validated = manager.validate_params(CONTROLLER, controller.name, controller.options)
    if manager.lookup(CONTROLLER, controller.name).params_type is None:
        return dict(controller.options)
    options: dict[str, Any] = unstructure(validated)
    return options


def blueprint_options(model: ModelConfig) -> dict[str, Any]:
    """The blueprint's options with its defaults; refuses names it does not declare and values it rejects."""
    manager = get_plugin_manager()
    spec = manager.lookup(BLUEPRINT, model.blueprint)
    options = {**spec.options, **model.blueprint_options}
    if spec.params_type is not None:
        validated = unstructure(manager.validate_params(BLUEPRINT, model.blueprint, options))
        options.update({name: value for name, value in validated.items() if name in options})
    unknown = sorted(set(model.blueprint_options) - set(spec.options))
    if unknown:
        allowed = ", ".join(sorted(spec.options)) or "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for blueprint {spec.name!r} "
            f"in model.blueprint_options; allowed: {allowed}"
        )
    return options


def resolve_params(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with every plugin parameter validated and every default written out."""
    return attrs.evolve(
        config,
        data=attrs.evolve(config.data, params=unstructure(dataset_params(config.data))),
        model=attrs.evolve(config.model, blueprint_options=blueprint_options(config.model)),
        controller=attrs.evolve(config.controller, options=controller_options(config.controller)),
    )


def tracker_names(chosen: Iterable[str] | None = None, without: Iterable[str] = ()) -> list[str]:
    """The trackers of a run, in the order they receive events, minus ``without``.

    Without ``chosen`` (None), every tracker that is on by default, in
    registration order; with names, the run's own files (``json``) then
    ``chosen`` in the order given; with an empty list, none. Unknown names
    fail with the list of available ones; a default tracker two plugins both
    register fails naming both.
    """
    manager = get_plugin_manager()
    collected = manager.collected(TRACKER)
    explicit = chosen is not None
    chosen = list(chosen or ())
    excluded = set(without)
    for name in [*chosen, *excluded]:
        manager.lookup(TRACKER, name)
    if explicit and not chosen:
        return []
    if chosen:
        run_files = [RUN_FILES_TRACKER] if RUN_FILES_TRACKER in collected.records else []
        names = list(dict.fromkeys([*run_files, *chosen]))
    else:
        names = [name for name, spec in collected.records.items() if spec.default]
        for name, specs in collected.contenders.items():
            if any(spec.default for spec in specs) and name not in excluded:
                manager.lookup(TRACKER, name)  # raises: the default set would silently lack it
    return [name for name in names if name not in excluded]


def tracker_options(names: Iterable[str], settings: dict[str, Any] | None) -> dict[str, Any]:
    """Each chosen tracker's validated options, built from the tracker flags given (by field name)."""
    specs = get_plugin_manager().registrations(TRACKER)
    out: dict[str, Any] = {}
    for name in names:
        options_type = specs[name].options_type
        if options_type is None:
            continue
        fields = {field.name for field in attrs.fields(options_type)}
        given = {key: value for key, value in (settings or {}).items() if key in fields}
        out[name] = structure(given, options_type, path=f"{name} tracker")
    return out
