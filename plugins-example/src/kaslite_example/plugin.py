"""The entry-point module: one hook implementation per kind of thing the plugin adds."""

import kaslite
from kaslite.hookspecs import BlueprintSpec, ControllerSpec, DatasetSpec
from kaslite_example.checkerboard import CheckerboardParams, generate_checkerboard
from kaslite_example.lowrank import LowRankParams, build_lowrank
from kaslite_example.policy import GapAwareParams, make_gap_aware


@kaslite.hookimpl
def kaslite_datasets() -> list[DatasetSpec]:
    return [DatasetSpec("checkerboard", CheckerboardParams, generate_checkerboard, "k×k board of alternating classes")]


@kaslite.hookimpl
def kaslite_controllers() -> list[ControllerSpec]:
    description = "grow when the train/val gap stops shrinking; cull a seed whose blend hurt val loss"
    return [ControllerSpec("gap-aware", make_gap_aware, description, params_type=GapAwareParams)]


@kaslite.hookimpl
def kaslite_seed_blueprints() -> list[BlueprintSpec]:
    return [
        BlueprintSpec(
            "lowrank", build_lowrank, "rank-r linear map dim → r → dim", {"rank": 4}, params_type=LowRankParams
        )
    ]
