"""The flags of ``kaslite run`` and ``kaslite sweep``: kaslite's own, and how a field becomes a flag.

Plugins add flags of their own (a dataset's parameters, a tracker's options).
The plugin host refuses a plugin record whose flag is listed here or held by
another plugin's record, so a flag always means one thing and no value is
silently lost. A plugin's parameters are also reachable through namespaced
flags that cannot collide: ``--dataset-param``, ``--controller-param``,
``--blueprint-param`` (``KEY=VALUE``).

Kept free of click and torch: the plugin host imports it.
"""

from typing import Any

import attrs

from kaslite.config import SECTIONS

# Config fields whose flag is not simply their own name.
FLAG_NAMES: dict[tuple[str, str], list[str]] = {
    ("data", "problem"): ["--problem", "--problem_type", "--problem-type"],
    ("controller", "name"): ["--controller"],
    ("train", "seed"): ["--seed"],
}
# Free-form mappings are set with KEY=VALUE flags instead (--dataset-param, --blueprint-param, ...).
MAPPING_FIELDS = {("data", "params"), ("model", "blueprint_options"), ("controller", "options")}

# Options of ``kaslite run`` and ``kaslite sweep`` that are not config fields (both commands take
# plugin flags, so a plugin flag must avoid either's).
COMMAND_FLAGS: dict[str, str] = {
    "--config": "the config file",
    "--resume": "kaslite run --resume",
    "--tracker": "the tracker choice",
    "--no-tracker": "the tracker choice",
    "--output-dir": "the output directory",
    "--output_dir": "the output directory",
    "--run-name": "the run name",
    "--run_name": "the run name",
    "--quiet": "quiet output",
    "--nproc": "the number of processes",
    "--data": "the data file",
    "--dataset-param": "dataset parameters",
    "--controller-param": "controller parameters",
    "--blueprint-param": "blueprint parameters",
    "--blueprint-hidden": "the blueprint's hidden width",
    "--blueprint_hidden": "the blueprint's hidden width",
    "--help": "help",
    "--method": "the sweep method",
    "--trials": "the sweep's trials",
    "--metric": "the sweep metric",
    "--direction": "the sweep direction",
    "--pruning": "sweep pruning",
    "--sampler-seed": "the sweep's sampler seed",
    "--sampler_seed": "the sweep's sampler seed",
    "--jobs": "the sweep's jobs",
    "--storage": "the sweep storage",
    "--study": "the sweep study",
    "--heartbeat": "the sweep heartbeat",
    "--grace": "the sweep grace period",
}


def field_flags(name: str, is_bool: bool = False) -> list[str]:
    """The flags of a field: ``--n-samples`` and ``--n_samples``; ``--register`` and ``--no-register`` for a bool."""
    dashed = "--" + name.replace("_", "-")
    if is_bool:
        return [dashed, "--no-" + dashed[2:]]
    return [dashed, "--" + name] if "_" in name else [dashed]


def config_field_flags(section: str, name: str, is_bool: bool = False) -> list[str]:
    """The flags of one config field (``train.lr`` -> ``--lr``); the first is the one to show."""
    return FLAG_NAMES.get((section, name)) or field_flags(name, is_bool)


def config_flags() -> dict[str, str]:
    """Flag -> the config field it sets (``--lr`` -> ``train.lr``), for every config field with a flag."""
    out: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for field in attrs.fields(cls):
            if (section, field.name) not in MAPPING_FIELDS:
                for flag in config_field_flags(section, field.name, field.type is bool):
                    out[flag] = f"{section}.{field.name}"
    return out


def reserved_flags() -> dict[str, str]:
    """Every flag kaslite itself defines on ``run`` and ``sweep``, with what it sets."""
    return {**config_flags(), **COMMAND_FLAGS}


def plugin_field_flags(params_type: Any) -> dict[str, str]:
    """Flag -> field name for each field of a plugin's attrs parameter class."""
    return {
        flag: field.name for field in attrs.fields(params_type) for flag in field_flags(field.name, field.type is bool)
    }


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp).replace("typing.", ""))


def describe_fields(params_type: Any) -> list[dict[str, Any]]:
    """Name, type, default (None when required), whether required, and help (``metadata["help"]``) of each field."""
    rows = []
    for field in attrs.fields(params_type):
        required = field.default is attrs.NOTHING
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = None if default.takes_self else default.factory()
        rows.append(
            {
                "name": field.name,
                "type": _type_name(field.type),
                "default": None if required else default,
                "required": required,
                "help": str(field.metadata.get("help", "")),
            }
        )
    return rows
