"""Experiment configuration, one concern in one package.

- :mod:`~kaslite.config.schema`: the attrs classes (``ExperimentConfig`` and its sections), YAML in and out;
- :mod:`~kaslite.config.structure`: the converter from plain data to those classes, errors by path;
- :mod:`~kaslite.config.validation`: the validators fields (and plugins' parameter classes) use;
- :mod:`~kaslite.config.resolve`: plugins' parameters checked and filled in, in one pass over the config;
- :mod:`~kaslite.config.flagspace`: the command-line flags the config's fields and plugins' parameters become.

The classes and YAML helpers are importable from here, as they always were.
"""

from kaslite.config.schema import (
    DEVICES,
    SECTIONS,
    ControllerConfig,
    DataConfig,
    ExperimentConfig,
    ModelConfig,
    SeedConfig,
    TrainConfig,
    build_config,
    config_to_dict,
    deep_merge,
    flatten,
    load_yaml,
    save_yaml,
)

__all__ = [
    "DEVICES",
    "SECTIONS",
    "ControllerConfig",
    "DataConfig",
    "ExperimentConfig",
    "ModelConfig",
    "SeedConfig",
    "TrainConfig",
    "build_config",
    "config_to_dict",
    "deep_merge",
    "flatten",
    "load_yaml",
    "save_yaml",
]
