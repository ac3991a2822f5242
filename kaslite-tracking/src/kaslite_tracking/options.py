"""Tracker settings: each field becomes a ``kaslite run`` flag (``tracking_uri`` -> ``--tracking-uri``)."""

import attrs

from kaslite.config.validation import between, non_empty


@attrs.frozen
class MlflowOptions:
    """Where the ``mlflow`` tracker logs, and when it registers the trained model."""

    experiment: str = attrs.field(default="kaslite", validator=non_empty, metadata={"help": "MLflow experiment name"})
    tracking_uri: str = attrs.field(
        default="",
        metadata={"help": "MLflow tracking URI; empty: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here"},
    )
    model_name: str = attrs.field(
        default="kaslite", validator=non_empty, metadata={"help": "registered model the trained model joins"}
    )
    register: bool = attrs.field(
        default=True,
        metadata={"help": "kaslite run: register the model when val_acc is high enough (a sweep's trials never do)"},
    )
    register_best: bool = attrs.field(
        default=False,
        metadata={"help": "kaslite sweep: once every trial is done, register the best trial's model (same thresholds)"},
    )
    register_threshold: float = attrs.field(
        default=0.70, validator=between(0.0, 1.0), metadata={"help": "val_acc from which a version is registered"}
    )
    staging_threshold: float = attrs.field(
        default=0.90, validator=between(0.0, 1.0), metadata={"help": "val_acc from which it gets the alias staging"}
    )


@attrs.frozen
class TensorBoardOptions:
    """Where the ``tensorboard`` tracker writes: ``TENSORBOARD_DIR/RUN_NAME/``."""

    tensorboard_dir: str = attrs.field(
        default="runs", validator=non_empty, metadata={"help": "folder of the event files (one subfolder per run)"}
    )
