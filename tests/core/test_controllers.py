"""Each builtin controller's decisions on scripted metric histories."""

import pytest

import kaslite
from kaslite.config import ControllerConfig
from kaslite.control import SEED_KINDS, Controller, EpochMetrics, Germinate, Observation, SeedView
from kaslite.plugins import get_controller
from kaslite.train import Tracker


def seeds(**states) -> tuple[SeedView, ...]:
    health = {"seed1_1": 0.5, "seed2_1": 0.1, "seed3_1": 0.3}
    return tuple(SeedView(sid, int(sid[4]), states.get(sid, "dormant"), 0.0, health[sid], 0.0, 0.0) for sid in health)


def play(controller, losses, accs=None, states_by_epoch=None):
    """Feed one epoch at a time; return {epoch: actions} for epochs with actions."""
    history, decisions = [], {}
    for epoch, loss in enumerate(losses, start=1):
        acc = (accs or [0.5] * len(losses))[epoch - 1]
        history.append(EpochMetrics(epoch, 2, loss, loss, acc))
        states = (states_by_epoch or {}).get(epoch, {})
        actions = controller.decide(Observation(epoch, 2, tuple(history), seeds(**states)))
        if actions:
            decisions[epoch] = actions
    return decisions


def make(name, **options):
    return get_controller(name).factory(ControllerConfig(name=name, **options))


def test_kasmina_germinates_the_least_healthy_seed_after_patience():
    controller = make("kasmina", patience=3, delta=0.01)
    decisions = play(controller, [1.0, 0.9, 0.895, 0.9, 0.89, 0.9])
    # best 0.9 at epoch 2; epochs 3, 4, 5 improve by < delta -> plateau at epoch 5
    assert decisions == {5: [Germinate("seed2_1")]}


def test_kasmina_improvement_resets_patience():
    controller = make("kasmina", patience=2, delta=0.0)
    assert play(controller, [1.0, 0.9, 0.8, 0.7, 0.6]) == {}


def test_kasmina_waits_while_a_seed_is_in_flight():
    controller = make("kasmina", patience=2, delta=0.0)
    flat = [1.0] * 8
    in_flight = {epoch: {"seed2_1": "training"} for epoch in range(1, 7)}
    decisions = play(controller, flat, states_by_epoch=in_flight)
    # Patience counts again only after the seed left training (epoch 7): germinate at epoch 8.
    assert decisions == {8: [Germinate("seed2_1")]}


def test_kasmina_respects_the_accuracy_threshold():
    controller = make("kasmina", patience=1, acc_threshold=0.9)
    assert play(controller, [1.0, 1.0, 1.0], accs=[0.95, 0.95, 0.95]) == {}


def test_kasmina_skips_seeds_already_grown_and_stops_when_none_left():
    controller = make("kasmina", patience=1, delta=0.0)
    states = {"seed2_1": "active", "seed3_1": "active", "seed1_1": "active"}
    assert play(controller, [1.0] * 4, states_by_epoch={e: states for e in range(1, 5)}) == {}


def test_kasmina_state_round_trips():
    controller = make("kasmina", patience=3, delta=0.0)
    play(controller, [1.0, 1.0, 1.0])
    restored = make("kasmina", patience=3, delta=0.0)
    restored.load_state_dict(controller.state_dict())
    assert restored.state_dict() == controller.state_dict() == {"best_loss": 1.0, "wait": 2}


def test_periodic_germinates_in_order_every_period():
    controller = make("periodic", period=2)
    decisions = play(controller, [1.0] * 6)
    assert decisions == {2: [Germinate("seed1_1")], 4: [Germinate("seed1_1")], 6: [Germinate("seed1_1")]}
    assert controller.state_dict() == {"epochs_in_phase2": 6}


@pytest.mark.parametrize("losses", [[1.0] * 10, [1.0 / n for n in range(1, 11)]])
def test_never_never_acts(losses):
    assert play(make("never"), losses) == {}


def scored(**scores) -> tuple[SeedView, ...]:
    """Dormant seeds of three kinds with the given expansion scores (None: not measured)."""
    from kaslite.testing import seed_view

    layers = {"seed1_1": None, "width0_1": None, "wide_1": 2}  # a wide seed's id names no layer
    return tuple(seed_view(sid, layer=layer, score=scores.get(sid)) for sid, layer in layers.items())


def test_expand_asks_for_scores_and_grows_the_best_scoring_seed_of_any_kind_on_a_plateau():
    controller = make("expand", patience=2, delta=0.0, options={"threshold": 0.5})
    assert controller.wants_scores
    history = [EpochMetrics(epoch, 2, 1.0, 1.0, 0.5) for epoch in (1, 2, 3)]
    views = scored(seed1_1=0.6, width0_1=2.0, wide_1=1.5)
    assert [view.kind for view in views] == ["deep", "width", "wide"]
    decisions = [controller.decide(Observation(e, 2, tuple(history[:e]), views)) for e in (1, 2, 3)]
    assert decisions == [[], [], [Germinate("width0_1")]]  # best 1.0 at epoch 1; two stale epochs


def test_expand_stops_growing_when_no_candidate_clears_the_threshold():
    controller = make("expand", patience=1, delta=0.0, options={"threshold": 0.5})
    history = tuple(EpochMetrics(epoch, 2, 1.0, 1.0, 0.5) for epoch in (1, 2))
    assert controller.decide(Observation(1, 2, history[:1], scored(seed1_1=0.4))) == []
    assert controller.decide(Observation(2, 2, history, scored(seed1_1=0.4, wide_1=0.3))) == []
    assert controller.decide(Observation(2, 2, history, scored())) == []  # nothing measured: nothing to rank


def test_expand_refuses_a_negative_threshold_before_any_work():
    from kaslite.errors import ConfigError
    from kaslite.plugins import CONTROLLER, get_plugin_manager

    with pytest.raises(ConfigError, match=r"controller 'expand' .*parameter threshold = -1.0"):
        get_plugin_manager().validate_params(CONTROLLER, "expand", {"threshold": -1.0})


class DeepestDormant(Controller):
    """A policy written when every seed was a deep one: it grows the deepest dormant seed at once."""

    def decide(self, obs):
        dormant = obs.in_state("dormant")
        return [Germinate(max(dormant, key=lambda seed: seed.layer).seed_id)] if dormant else []


class DeepestOfAnyKind(DeepestDormant):
    seed_kinds = SEED_KINDS


class Warnings(Tracker):
    def __init__(self):
        self.warnings = []

    def on_warning(self, event):
        self.warnings.append(event)


@pytest.mark.parametrize(
    ("policy", "grown", "warned"),
    [
        (DeepestDormant, "seed2_1", ["growth policy DeepestDormant is shown deep seeds only: it never grows this "
                                    "network's wide, width seeds; give it seed_kinds = ('deep', 'width', 'wide') to be "
                                    "shown them"]),
        (DeepestOfAnyKind, "wide_1", []),
    ],
)  # fmt: skip
def test_a_policy_is_shown_the_seed_kinds_it_handles_and_told_once_about_the_others(policy, grown, warned):
    from kaslite.nn import MorphogeneticNet

    net = MorphogeneticNet.from_config(2, 2)  # the defaults: deep, width and wide seeds
    assert {seed.kind for seed in net.seeds.values()} == {"deep", "width", "wide"}
    heard = Warnings()
    grower = kaslite.Grower(net, policy(), warm_up_epochs=0, trackers=[heard])
    for epoch in range(2):
        grower.step()
        made = grower.epoch_end(val_loss=1.0, val_acc=0.5)
        if epoch == 0:
            assert [(event.seed_id, event.to_state) for event in made] == [(grown, "training")]
    assert [event.message for event in heard.warnings if event.kind == "policy"] == warned
