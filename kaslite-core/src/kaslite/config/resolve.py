"""What a run uses, resolved before any work starts: plugin parameters with their defaults, and trackers.

Nothing here imports torch, so ``kaslite run`` refuses a bad value in a
fraction of a second. ``config.yaml`` stores the resolved parameters, so it
reproduces the run even after a plugin changes a default.
"""

from collections.abc import Iterable
from typing import Any

import attrs

from kaslite.config import DataConfig, ExperimentConfig
from kaslite.config.structure import structure, unstructure
from kaslite.errors import ConfigError
from kaslite.plugins import BLUEPRINT, CONTROLLER, DATASET, TRACKER, Kind, get_plugin_manager

# The tracker that writes the run's own files (metrics.json, history.csv, events.jsonl): it stays
# when --tracker names others, and goes only when --no-tracker names it.
RUN_FILES_TRACKER = "json"


# Where the config names each plugin and holds its parameters: (kind, section, name field, parameters field).
PLUGIN_FIELDS = (
    (DATASET, "data", "problem", "params"),
    (BLUEPRINT, "model", "blueprint", "blueprint_options"),
    (CONTROLLER, "controller", "name", "options"),
)


def dataset_params(data: DataConfig) -> Any:
    """The dataset's validated parameter object; an error names the dataset, its plugin and the parameter."""
    return get_plugin_manager().validate_params(DATASET, data.problem, data.params)


def plugin_parameters(kind: Kind, name: str, given: dict[str, Any], where: str) -> dict[str, Any]:
    """One plugin's parameters, validated by its parameter class with every default written out.

    A blueprint that declares its options without a class (``BlueprintSpec.options``) gets their
    defaults, and a name it does not declare is refused.
    """
    manager = get_plugin_manager()
    spec = manager.lookup(kind, name)
    declared: dict[str, Any] | None = getattr(spec, "options", None)  # a blueprint names its options
    unknown = sorted(set(given) - set(declared)) if declared is not None else []
    if unknown:
        allowed = ", ".join(sorted(declared or ())) or "none"
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for {kind.label} {spec.name!r} in {where}; allowed: {allowed}"
        )
    values = {**(declared or {}), **given}
    if spec.params_type is None:
        return values
    validated: dict[str, Any] = unstructure(manager.validate_params(kind, name, values))
    return {key: value for key, value in validated.items() if declared is None or key in declared}


def resolve_params(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with every plugin parameter validated and every default written out, in one pass."""
    sections = {}
    for kind, section, name_field, values_field in PLUGIN_FIELDS:
        part = getattr(config, section)
        values = plugin_parameters(
            kind, getattr(part, name_field), getattr(part, values_field), f"{section}.{values_field}"
        )
        sections[section] = attrs.evolve(part, **{values_field: values})
    return attrs.evolve(config, **sections)


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
    manager = get_plugin_manager()
    out: dict[str, Any] = {}
    for name in names:
        options_type = manager.lookup(TRACKER, name).options_type
        if options_type is None:
            continue
        fields = {field.name for field in attrs.fields(options_type)}
        given = {key: value for key, value in (settings or {}).items() if key in fields}
        out[name] = structure(given, options_type, path=f"{name} tracker")
    return out
