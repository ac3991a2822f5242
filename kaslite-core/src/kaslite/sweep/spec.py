"""Read a sweep file: which run parameters are fixed, which are swept, and how.

A sweep file is a flat mapping of ``kaslite run`` parameters by their flag
names without dashes (``num_layers``, ``lr``, ``problem_type``, ``n_samples``);
a plugin's own parameters are ``dataset_param.NAME``, ``controller_param.NAME``
and ``blueprint_param.NAME`` (``controller_param.patience: [2, 4]``).
A value is one value, a YAML list, or a comma-separated string
(``lr: "0.001,0.003"``, ``shadow_lr: 1e-4,5e-4``); more than one value sweeps
the parameter. A few reserved keys describe the sweep itself::

    method: bayesian        # or grid (the default)
    trials: 20              # bayesian only
    metric: val_acc         # what "best" means, and what Bayesian search optimises
    direction: maximize
    pruning: median         # stop trials whose per-epoch metric is below the median
    parameters:             # ranges (bayesian) or value lists, same names as above
      lr: {low: 1.0e-4, high: 1.0e-2, log: true}
      num_layers: {choices: [2, 4, 8]}

Only the shape of the file is checked here, before any trial starts; whether a
value suits its field is checked per trial, so one bad combination fails that
trial and not the sweep.
"""

import difflib
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from kaslite.config import load_yaml
from kaslite.errors import ConfigError

METHODS = ("grid", "bayesian")
DIRECTIONS = {"maximize": "maximize", "maximise": "maximize", "max": "maximize",
              "minimize": "minimize", "minimise": "minimize", "min": "minimize"}  # fmt: skip
PRUNERS = ("none", "median")
# Final metrics (metrics.json) a sweep can rank trials by.
METRICS = (
    "val_acc", "best_acc", "val_loss", "train_loss", "phase1_best_acc", "accuracy_dip",
    "recovery_time", "seeds_activated", "params_total", "params_trunk", "wall_time_s",
)  # fmt: skip
# Metrics that also exist after every epoch, so pruning can watch them.
EPOCH_METRICS = ("val_acc", "best_acc", "val_loss", "train_loss")
RESERVED = ("method", "trials", "metric", "direction", "pruning", "parameters", "sampler_seed")
DEFAULT_TRIALS = 20

Scalar = bool | int | float | str


@attrs.frozen
class Knob:
    """A flat run parameter a sweep file may set: where it lands in the config and the type it holds."""

    path: tuple[str, ...]
    type: type


@attrs.frozen
class Choice:
    """A parameter that takes each of ``values`` (grid) or one of them (bayesian)."""

    values: tuple[Scalar, ...]


@attrs.frozen
class Range:
    """A numeric interval for Bayesian search; ``integer`` for int fields."""

    low: float
    high: float
    log: bool = False
    step: float | None = None
    integer: bool = False


@attrs.frozen
class SweepDefaults:
    """Sweep settings from the command line; the file's own keys override them."""

    method: str | None = None
    trials: int | None = None
    metric: str | None = None
    direction: str | None = None
    pruning: str | None = None
    sampler_seed: int | None = None


@attrs.frozen
class SweepSpec:
    """One sweep file, read and checked."""

    name: str
    source: str
    method: str
    fixed: dict[str, Scalar]
    parameters: dict[str, Choice | Range]
    trials: int
    metric: str
    direction: str
    pruning: str
    sampler_seed: int | None
    # Flat name -> config path, for every name the file uses.
    paths: dict[str, tuple[str, ...]]

    def layer(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The config layer that sets each flat parameter in ``values``."""
        layer: dict[str, Any] = {}
        for name, value in values.items():
            *parents, leaf = self.paths[name]
            node = layer
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = value
        return layer


def _problem(source: str, message: str) -> ConfigError:
    return ConfigError(f"sweep file {source!r}: {message}")


def _scalar(text: str) -> Any:
    """One value of a comma-separated list, read as YAML would read it alone."""
    import yaml

    value = yaml.safe_load(text) if text else ""
    if isinstance(value, str):
        return _number_from_string(value)
    if isinstance(value, (dict, list)):
        return text  # "a: b" or "[x]" inside a comma list is text, not structure
    return value


def _number_from_string(text: str) -> Scalar:
    # PyYAML reads 1e-4 (no dot) as a string; a user who typed it meant a number.
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _values(source: str, name: str, raw: Any) -> tuple[Scalar, ...]:
    """Every value a parameter takes: a list, a comma-separated string, or a single value."""
    if isinstance(raw, list):
        items = [_number_from_string(item) if isinstance(item, str) else item for item in raw]
    elif isinstance(raw, str):
        items = [_scalar(part.strip()) for part in raw.split(",")] if "," in raw else [_number_from_string(raw)]
    else:
        items = [raw]
    if not items:
        raise _problem(source, f"parameter {name} has no values")
    for item in items:
        if isinstance(item, str):
            continue
        if not isinstance(item, (bool, int, float)):
            raise _problem(source, f"parameter {name}: {item!r} is not a number, a string or true/false")
    return tuple(dict.fromkeys(items))  # a value listed twice is one grid point, not two


def _range(source: str, name: str, raw: Mapping[str, Any], knob: Knob) -> Range:
    unknown = sorted(set(raw) - {"low", "high", "log", "step"})
    if unknown:
        raise _problem(
            source, f"parameter {name}: unknown key(s) {', '.join(unknown)}; a range has low, high, log, step"
        )
    if knob.type not in (int, float):
        raise _problem(
            source, f"parameter {name} holds a {knob.type.__name__}; give it {{choices: [...]}}, not a range"
        )
    bounds: dict[str, float] = {}
    for key in ("low", "high"):
        value = _number_from_string(raw[key]) if isinstance(raw.get(key), str) else raw.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise _problem(source, f"parameter {name}: {key} must be a number, got {raw.get(key)!r}")
        if knob.type is int and not float(value).is_integer():
            raise _problem(source, f"parameter {name} is an integer; {key} = {value!r} is not")
        bounds[key] = value
    if bounds["low"] > bounds["high"]:
        raise _problem(source, f"parameter {name}: low {bounds['low']!r} is above high {bounds['high']!r}")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise _problem(source, f"parameter {name}: log must be true or false, got {log!r}")
    if log and bounds["low"] <= 0:
        raise _problem(source, f"parameter {name}: a log range needs low > 0, got {bounds['low']!r}")
    step = raw.get("step")
    if step is not None and (isinstance(step, bool) or not isinstance(step, (int, float)) or step <= 0):
        raise _problem(source, f"parameter {name}: step must be a number > 0, got {step!r}")
    if step is not None and log:
        raise _problem(source, f"parameter {name}: a range cannot have both step and log")
    return Range(bounds["low"], bounds["high"], log, step, integer=knob.type is int)


def _knob(source: str, key: Any, knobs: Mapping[str, Knob]) -> tuple[str, Knob]:
    name = str(key).replace("-", "_")
    if name not in knobs:
        # A plugin's parameter named without its prefix (window -> controller_param.window) is the likely slip.
        close = [knob for knob in knobs if knob.endswith(f".{name}")] or difflib.get_close_matches(name, list(knobs), 1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise _problem(
            source,
            f"unknown parameter {name!r}{hint}; parameters are kaslite run's flag names, and a plugin's "
            "are dataset_param.NAME, controller_param.NAME, blueprint_param.NAME",
        )
    return name, knobs[name]


def _pick(source: str, key: str, value: Any, allowed: Mapping[str, str] | tuple[str, ...]) -> str:
    choice = str(value).strip().lower()
    if choice not in allowed:
        names = sorted(set(allowed.values()) if isinstance(allowed, Mapping) else allowed)
        raise _problem(source, f"{key} {value!r} is not one of {', '.join(names)}")
    return allowed[choice] if isinstance(allowed, Mapping) else choice


def _count(source: str, key: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise _problem(source, f"{key} must be an integer >= {low}, got {value!r}")
    return value


def parse_spec(
    data: Mapping[str, Any], knobs: Mapping[str, Knob], source: str, defaults: SweepDefaults = SweepDefaults()
) -> SweepSpec:
    """A :class:`SweepSpec` from a sweep file's mapping; every problem is one :class:`ConfigError`."""
    settings = {key: data[key] for key in RESERVED if key in data}
    method = _pick(source, "method", settings.get("method", defaults.method or "grid"), METHODS)
    metric = _pick(source, "metric", settings.get("metric", defaults.metric or "val_acc"), METRICS)
    direction = _pick(source, "direction", settings.get("direction", defaults.direction or "maximize"), DIRECTIONS)
    pruning = settings.get("pruning", defaults.pruning or "none")
    pruning = {True: "median", False: "none"}.get(pruning, pruning) if isinstance(pruning, bool) else pruning
    pruning = _pick(source, "pruning", pruning, PRUNERS)
    if pruning != "none" and metric not in EPOCH_METRICS:
        raise _problem(source, f"pruning watches the metric every epoch; {metric} exists only at the end of a run")
    trials = _count(source, "trials", settings.get("trials", defaults.trials or DEFAULT_TRIALS), 1)
    sampler_seed = settings.get("sampler_seed", defaults.sampler_seed)
    if sampler_seed is not None:
        sampler_seed = _count(source, "sampler_seed", sampler_seed, 0)

    nested = data.get("parameters") or {}
    if not isinstance(nested, Mapping):
        raise _problem(source, f"parameters must be a mapping of parameter names, got {type(nested).__name__}")
    entries = [(key, value) for key, value in data.items() if key not in RESERVED] + list(nested.items())

    fixed: dict[str, Scalar] = {}
    parameters: dict[str, Choice | Range] = {}
    paths: dict[str, tuple[str, ...]] = {}
    for key, raw in entries:
        name, knob = _knob(source, key, knobs)
        if name in paths:
            raise _problem(source, f"parameter {name} is given twice")
        paths[name] = knob.path
        if isinstance(raw, Mapping) and "choices" in raw:
            if set(raw) != {"choices"}:
                raise _problem(source, f"parameter {name}: {{choices: [...]}} takes no other keys")
            values = _values(source, name, raw["choices"] if isinstance(raw["choices"], list) else [raw["choices"]])
        elif isinstance(raw, Mapping):
            if method != "bayesian":
                raise _problem(source, f"parameter {name}: a range {{low, high}} needs method: bayesian")
            if "low" not in raw or "high" not in raw:
                raise _problem(source, f"parameter {name}: a range needs low and high (or give {{choices: [...]}})")
            parameters[name] = _range(source, name, raw, knob)
            continue
        else:
            values = _values(source, name, raw)
        if len(values) == 1:
            fixed[name] = values[0]
        else:
            parameters[name] = Choice(values)
    if method == "grid" and not parameters:
        raise _problem(source, "nothing to sweep: give at least one parameter more than one value")
    if method == "bayesian" and not parameters:
        raise _problem(source, "nothing to search: give a range or choices under parameters")

    name = Path(source).stem
    return SweepSpec(name, source, method, fixed, parameters, trials, metric, direction, pruning, sampler_seed, paths)


def load_spec(path: Path, knobs: Mapping[str, Knob], defaults: SweepDefaults = SweepDefaults()) -> SweepSpec:
    """Read and check the sweep file at ``path``."""
    data = load_yaml(path)
    if not data:
        raise _problem(str(path), "it is empty")
    return parse_spec(data, knobs, str(path), defaults)


def sweep_files(paths: list[Path]) -> list[Path]:
    """The sweep files named: each file as given, each directory's ``.yaml``/``.yml`` files in name order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
            if not found:
                raise ConfigError(f"sweep directory {str(path)!r} holds no .yaml files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"sweep file {str(path)!r} does not exist")
    names = [f.stem for f in files]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"two sweep files share the name {twice[0]!r}; each sweep is named by its file")
    return files
