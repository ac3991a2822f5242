"""Optuna's side of a sweep: the sampler, the pruner, and the parameters a trial gets."""

from typing import TYPE_CHECKING

from kaslite.sweep.spec import Choice, Scalar, SweepSpec

if TYPE_CHECKING:
    import optuna


def make_sampler(spec: SweepSpec, slot: int = 0) -> "optuna.samplers.BaseSampler":
    """TPE for Bayesian search; for a grid every value is fixed when the point is queued, so any sampler does.

    With ``sampler_seed`` each slot gets its own seed: a sweep is reproducible, and
    two workers given the same seed do not draw the same random start-up values.
    """
    import optuna

    seed = None if spec.sampler_seed is None else spec.sampler_seed + slot
    if spec.method == "grid":
        return optuna.samplers.RandomSampler(seed=seed)
    # TPE's default of 10 random trials would leave a small sweep with no guided trial at all.
    startup = min(10, max(2, spec.trials // 3))
    # constant_liar: trials running in other workers count as bad results, so parallel workers spread out.
    return optuna.samplers.TPESampler(n_startup_trials=startup, seed=seed, constant_liar=True)


def make_pruner(spec: SweepSpec) -> "optuna.pruners.BasePruner":
    """Median pruning on the per-epoch metric when asked for, else none."""
    import optuna

    if spec.pruning == "median":
        from kaslite.sweep.grid import slot_count

        # Optuna's default waits for 5 finished trials; a quarter of a small sweep is enough of a median.
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(1, slot_count(spec) // 4)))
    return optuna.pruners.NopPruner()


def suggest(trial: "optuna.Trial", spec: SweepSpec) -> dict[str, Scalar]:
    """The trial's value of every swept parameter (a queued grid point's fixed values come back as they are)."""
    params: dict[str, Scalar] = {}
    for name, parameter in spec.parameters.items():
        if isinstance(parameter, Choice):
            choice = trial.suggest_categorical(name, list(parameter.values))
            assert choice is not None  # sweep values are never null (spec._values refuses them)
            params[name] = choice
        elif parameter.integer:
            step = int(parameter.step) if parameter.step else 1
            params[name] = trial.suggest_int(
                name, int(parameter.low), int(parameter.high), step=step, log=parameter.log
            )
        else:
            params[name] = trial.suggest_float(
                name, parameter.low, parameter.high, step=parameter.step, log=parameter.log
            )
    return params
