"""``kaslite run``: train one experiment from flags and/or a YAML config.

Every config field is a flag, dashed (``--blend-steps``) with the original
underscore spelling as an alias (``--blend_steps``). Dataset parameters of
every installed dataset are flags too (``--n-samples``, ``--noise``, ...).
Flags override ``--config FILE.yaml``, which overrides the defaults.
"""

from pathlib import Path
from typing import Any

import attrs
import click

from kaslite.cli.data_cmd import parameter_options
from kaslite.config import SECTIONS, build_config, load_yaml
from kaslite.errors import ConfigError, InvalidValue
from kaslite.plugins import DATASET, TRACKER, get_plugin_manager

# Fields whose flag is not simply their own name.
FLAG_NAMES: dict[tuple[str, str], list[str]] = {
    ("data", "problem"): ["--problem", "--problem_type", "--problem-type"],
    ("controller", "name"): ["--controller"],
    ("train", "seed"): ["--seed"],
}
# Free-form mappings get KEY=VALUE flags instead (see --blueprint-option).
MAPPING_FIELDS = {("data", "params"), ("model", "blueprint_options"), ("controller", "options")}
_TYPES: dict[Any, Any] = {int: click.INT, float: click.FLOAT, str: click.STRING}


def _flag_names(section: str, name: str) -> list[str]:
    if (section, name) in FLAG_NAMES:
        return FLAG_NAMES[(section, name)]
    dashed = "--" + name.replace("_", "-")
    return [dashed, "--" + name] if "_" in name else [dashed]


def config_options() -> tuple[list[click.Option], dict[str, str]]:
    """One option per config field (dest ``section__field``), and path -> flag for error messages."""
    options: list[click.Option] = []
    flags: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for field in attrs.fields(cls):
            if (section, field.name) in MAPPING_FIELDS:
                continue
            names = _flag_names(section, field.name)
            dest = f"{section}__{field.name}"
            help_text = f"{section}.{field.name} [default: {field.default!r}]"
            if field.type is bool:
                positive = "/".join([names[0], "--no-" + names[0][2:]])
                option = click.Option([positive, dest], default=None, help=help_text)
            else:
                option = click.Option([*names, dest], type=_TYPES.get(field.type, click.STRING), help=help_text)
            options.append(option)
            flags[f"{section}.{field.name}"] = names[0]
    return options, flags


def dataset_options(taken: set[str]) -> list[click.Option]:
    """Options for every installed dataset's parameters (first definition of a name wins)."""
    seen: dict[str, click.Option] = {}
    for spec in get_plugin_manager().registrations(DATASET).values():
        for option in parameter_options(spec.params_type):
            if option.name not in seen and not set(option.opts) & taken:
                option.name = f"dataset__{option.name}"
                option.required = False
                seen[option.name] = option
    return list(seen.values())


def tracker_flag_options(taken: set[str]) -> list[click.Option]:
    """Options for every installed tracker's settings (``--tracking-uri``, ``--metrics-port``, ...)."""
    seen: dict[str, click.Option] = {}
    for spec in get_plugin_manager().registrations(TRACKER).values():
        if spec.options_type is None:
            continue
        for option in parameter_options(spec.options_type):
            if option.name not in seen and not set(option.opts) & taken:
                option.name = f"tracker__{option.name}"
                option.required = False
                seen[option.name] = option
    return list(seen.values())


def parse_pairs(pairs: tuple[str, ...], flag: str) -> dict[str, Any]:
    """``("hidden=64", "act=relu")`` -> ``{"hidden": 64, "act": "relu"}`` (values read as YAML scalars)."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid {flag} {pair!r}: expected KEY=VALUE")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


def dest_path(dest: str) -> tuple[str, ...] | None:
    """Where an option's value goes in the config (``train__lr`` -> ``("train", "lr")``); None if nowhere."""
    section, sep, name = dest.partition("__")
    if not sep or section == "tracker":  # tracker settings are not experiment config (see tracker_settings)
        return None
    if section == "dataset":
        return ("data", "params", name)
    return (section, name)


def flag_layer(given: dict[str, Any]) -> dict[str, Any]:
    """The config layer the flags describe: only what was actually given."""
    layer: dict[str, Any] = {}
    for dest, value in given.items():
        path = dest_path(dest)
        if value is None or path is None:
            continue
        *parents, leaf = path
        node = layer
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return layer


def tracker_settings(given: dict[str, Any]) -> dict[str, Any]:
    """The tracker flags that were given, by field name (``{"tracking_uri": ...}``)."""
    return {
        dest.removeprefix("tracker__"): value
        for dest, value in given.items()
        if dest.startswith("tracker__") and value is not None
    }


def experiment_layers(config_file: Path | None, given: dict[str, Any]) -> list[dict[str, Any]]:
    """The config layers of ``--config FILE`` and the flags, in the order they apply.

    Takes the options of :func:`data_and_plugin_options` out of ``given``.
    """
    layer = flag_layer(given)
    options = parse_pairs(given.pop("blueprint_option", ()), "--blueprint-param")
    blueprint_hidden = given.pop("blueprint_hidden", None)
    if blueprint_hidden is not None:
        options["hidden"] = blueprint_hidden
    if options:
        layer.setdefault("model", {})["blueprint_options"] = options
    controller_params = given.pop("controller_option", ())
    if controller_params:
        layer.setdefault("controller", {})["options"] = parse_pairs(controller_params, "--controller-param")
    dataset_params = given.pop("dataset_param", ())
    if dataset_params:
        layer.setdefault("data", {}).setdefault("params", {}).update(parse_pairs(dataset_params, "--dataset-param"))
    file_layer = load_yaml(config_file) if config_file else {}
    data_file = given.pop("data_file", None)
    if data_file is not None:  # replaces the config's dataset and its parameters
        file_layer.get("data", {}).pop("params", None)
        layer.setdefault("data", {}).update(problem="file", params={"path": data_file})
    return [file_layer, layer]


def with_flag(exc: InvalidValue, flags: dict[str, str]) -> ConfigError:
    """``exc`` naming the flag that sets the bad field, when there is one."""
    flag = flags.get(exc.field)
    if flag is None and exc.field.startswith("data.params."):
        flag = "--" + exc.field.removeprefix("data.params.").replace("_", "-")
    return ConfigError(f"{exc} (flag {flag})" if flag else str(exc))


def config_file_option(help_text: str) -> click.Option:
    """``--config FILE.yaml``."""
    return click.Option(["--config", "config_file"], type=click.Path(dir_okay=False, path_type=Path), help=help_text)


def tracker_choice_options() -> list[click.Option]:
    """``--tracker`` and ``--no-tracker``."""
    return [
        click.Option(["--tracker"], multiple=True, help="Tracker to use (repeatable); replaces the default set."),
        click.Option(["--no-tracker"], multiple=True, help="Remove a tracker from the set (repeatable)."),
    ]


def data_and_plugin_options() -> list[click.Option]:
    """``--data FILE`` and the KEY=VALUE parameters of plugin datasets, blueprints and controllers."""
    return [
        click.Option(
            ["--data", "data_file"],
            type=click.Path(dir_okay=False),
            help="Train on this .npz/.csv file (the `file` dataset), whatever data the config names.",
        ),
        click.Option(
            ["--dataset-param", "dataset_param"],
            multiple=True,
            help="KEY=VALUE parameter of the dataset (repeatable); same as its own flag.",
        ),
        click.Option(
            ["--blueprint-hidden", "--blueprint_hidden"],
            type=click.INT,
            help="Hidden width of the seed blueprint (model.blueprint_options.hidden).",
        ),
        click.Option(
            ["--blueprint-param", "--blueprint-option", "blueprint_option"],
            multiple=True,
            help="KEY=VALUE parameter of the blueprint (repeatable).",
        ),
        click.Option(
            ["--controller-param", "--controller-option", "controller_option"],
            multiple=True,
            help="KEY=VALUE parameter of the controller (repeatable).",
        ),
    ]


def field_options() -> tuple[list[click.Option], dict[str, str]]:
    """Every config field, dataset parameter and tracker setting as an option; and path -> flag."""
    config_opts, flags = config_options()
    taken = {opt for option in config_opts for opt in option.opts}
    return [*config_opts, *dataset_options(taken), *tracker_flag_options(taken)], flags


def make_run_command() -> click.Command:
    fields, flags = field_options()

    def callback(
        config_file: Path | None,
        resume: Path | None,
        tracker: tuple[str, ...],
        no_tracker: tuple[str, ...],
        output_dir: Path,
        run_name: str | None,
        quiet: bool,
        **given: Any,
    ) -> None:
        from kaslite.train.runner import resume_experiment, run_experiment

        settings = tracker_settings(given)
        try:
            if resume is not None:
                resume_experiment(resume, tracker or None, no_tracker, quiet, settings)
                return
            config = build_config(*experiment_layers(config_file, given))
            run_experiment(config, output_dir, run_name, tracker or None, no_tracker, quiet, settings)
        except InvalidValue as exc:
            raise with_flag(exc, flags) from None

    return click.Command(
        "run",
        callback=callback,
        help="Train a morphogenetic network; results go to OUTPUT_DIR/RUN_NAME/.",
        params=[
            config_file_option("YAML config (sections data, model, seeds, controller, train); flags override it."),
            click.Option(
                ["--resume"],
                type=click.Path(file_okay=False, path_type=Path),
                help="Continue the run in RUN_DIR from its last checkpoint.",
            ),
            *tracker_choice_options(),
            click.Option(
                ["--output-dir", "--output_dir"],
                type=click.Path(file_okay=False, path_type=Path),
                default=Path("results"),
                show_default=True,
                help="Where run directories go.",
            ),
            click.Option(["--run-name", "--run_name"], help="Run directory name [default: a slug of the config]."),
            click.Option(["--quiet", "-q"], is_flag=True, help="Print only the final summary line."),
            *data_and_plugin_options(),
            *fields,
        ],
    )


run = make_run_command()
