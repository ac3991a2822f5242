"""Tracker settings: each field becomes a ``kaslite run`` flag (``tracking_uri`` -> ``--tracking-uri``)."""

import attrs

from kaslite.validation import between, non_empty


@attrs.frozen
class MlflowOptions:
    """Where the ``mlflow`` tracker logs, and when it registers the trained model."""

    experiment: str = attrs.field(default="kaslite", validator=non_empty)
    # Empty: MLFLOW_TRACKING_URI, else the embedded SQLite store sqlite:///mlflow.db in the working directory.
    tracking_uri: str = ""
    model_name: str = attrs.field(default="kaslite", validator=non_empty)
    register: bool = True
    register_threshold: float = attrs.field(default=0.70, validator=between(0.0, 1.0))
    staging_threshold: float = attrs.field(default=0.90, validator=between(0.0, 1.0))


@attrs.frozen
class TensorBoardOptions:
    """Where the ``tensorboard`` tracker writes: ``TENSORBOARD_DIR/RUN_NAME/``."""

    tensorboard_dir: str = attrs.field(default="runs", validator=non_empty)
