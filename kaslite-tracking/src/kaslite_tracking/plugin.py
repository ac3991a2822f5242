"""The ``tracking`` plugin: the mlflow and tensorboard trackers, ``kaslite registry``, the ``models`` source,
and the end of a sweep's MLflow parent run.

Loaded through the ``kaslite`` entry point like any third-party plugin, on
every ``kaslite`` command: it imports neither mlflow, tensorboard nor torch,
which load inside the factories and commands when they are used.
"""

from typing import Any

import kaslite
from kaslite.hookspecs import ModelSourceSpec, TrackerSpec
from kaslite_tracking.options import MlflowOptions, TensorBoardOptions


def tensorboard_tracker(run: Any) -> Any:
    from kaslite_tracking.tensorboard_tracker import TensorBoardTracker

    return TensorBoardTracker(run)


def mlflow_tracker(run: Any) -> Any:
    from kaslite_tracking.mlflow_tracker import MlflowTracker

    return MlflowTracker(run)


def warm_up_tensorboard() -> None:
    """In the trackers' helper process, while the run is set up: TensorBoard's writer imports."""
    import torch.utils.tensorboard  # noqa: F401


def warm_up_mlflow() -> None:
    """In the trackers' helper process, while the run is set up: MLflow's client and model logging
    imports, and the helper that will draw the run's figure."""
    import mlflow.pyfunc  # noqa: F401
    import torch  # noqa: F401  (the model file is read to log it)
    from mlflow import MlflowClient  # noqa: F401

    from kaslite.plot.tracking import prepare

    prepare()


def load_registered(uri: str) -> Any:
    from kaslite_tracking.model_source import load_registered

    return load_registered(uri)


def list_registered(uri: str) -> list[dict[str, Any]]:
    from kaslite_tracking.model_source import list_registered

    return list_registered(uri)


@kaslite.hookimpl
def kaslite_trackers() -> list[TrackerSpec]:
    # tensorboard first: its files are flushed and closed when mlflow uploads them at the end of the run.
    return [
        TrackerSpec(
            "tensorboard",
            tensorboard_tracker,
            "TensorBoard event files under TENSORBOARD_DIR/RUN_NAME/",
            default=True,
            options_type=TensorBoardOptions,
            own_process=True,
            warm_up=warm_up_tensorboard,
        ),
        TrackerSpec(
            "mlflow",
            mlflow_tracker,
            "an MLflow run per kaslite run, the model logged and registered (embedded SQLite store by default)",
            default=True,
            options_type=MlflowOptions,
            own_process=True,
            warm_up=warm_up_mlflow,
        ),
    ]


@kaslite.hookimpl
def kaslite_model_sources() -> list[ModelSourceSpec]:
    return [
        ModelSourceSpec(
            "models", load_registered, list_registered, "MLflow registry: models:/NAME@ALIAS or models:/NAME/VERSION"
        )
    ]


@kaslite.hookimpl
def kaslite_sweep_end(sweep: Any) -> None:
    from kaslite_tracking.mlflow_tracker import end_sweep_parent

    end_sweep_parent(sweep)


@kaslite.hookimpl
def kaslite_commands(cli: Any) -> None:
    from kaslite_tracking.registry_cmd import registry

    cli.add_command(registry)
