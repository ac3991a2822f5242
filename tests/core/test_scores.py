"""Expansion scores: one forward and backward pass that leaves training untouched, the same measure for
every kind of seed, and the expand policy's decisions in the run's events."""

import json

import pytest
import torch
from torch import nn

import kaslite
from kaslite.nn import MorphogeneticNet
from kaslite.train.scores import measure_gradients, score_candidates

from .test_fit import QUICK, xor


def net_and_batch():
    torch.manual_seed(0)
    net = MorphogeneticNet(2, 8, 2, 1, 2, blueprint="residual", wide_seeds=1, width_seeds=1, width_units=4)
    x = torch.randn(64, 2)
    return net, x, (x[:, 0] * x[:, 1] > 0).long()


def test_measuring_leaves_gradients_modes_and_the_output_as_they_were():
    net, x, y = net_and_batch()
    net.train()
    net.blocks[0].eval()  # a user's own choice of mode must survive
    before = net(x).detach()
    measured, trunk_norm2 = measure_gradients(net, net.seeds.values(), x, y, nn.functional.cross_entropy)
    assert set(measured) == set(net.seeds) and trunk_norm2 > 0
    assert all(p.grad is None for p in net.parameters())
    assert net.training and not net.blocks[0].training
    assert torch.equal(net(x), before)
    assert all(not seed._scoring for seed in net.seeds.values())


def test_every_kind_is_scored_by_the_gradient_its_zero_fan_out_would_receive():
    net, x, y = net_and_batch()
    measured, trunk_norm2 = measure_gradients(net, net.seeds.values(), x, y, nn.functional.cross_entropy)
    candidates = {c.seed_id: c for c in score_candidates(net.seeds, measured, trunk_norm2)}
    assert {c.kind for c in candidates.values()} == {"deep", "width", "wide"}
    # The wide seed's units read x and write the logits: with zero fan-out V, dL/dV = Σ δ·relu(W·x + b)ᵀ,
    # and GradMax's best unit-norm fan-in makes its squared norm the top squared singular values of M.
    wide = net.seeds["wide_1"]
    logits = net(x).detach().requires_grad_()
    delta = torch.autograd.grad(nn.functional.cross_entropy(logits, y), logits)[0]
    stats = delta.T @ torch.cat([net.input_scale(x), torch.ones(64, 1)], dim=1)
    expected = float((torch.linalg.svdvals(stats.double())[: wide.units] ** 2).sum())
    assert candidates["wide_1"].gain == pytest.approx(expected, rel=1e-5)
    assert candidates["wide_1"].score == pytest.approx(expected / trunk_norm2, rel=1e-5)
    # A loss ten times larger scales every gradient: the gains by 100, the scores not at all.
    scaled, scaled_norm2 = measure_gradients(
        net, net.seeds.values(), x, y, lambda out, target: 10 * nn.functional.cross_entropy(out, target)
    )
    for c in score_candidates(net.seeds, scaled, scaled_norm2):
        assert c.gain == pytest.approx(100 * candidates[c.seed_id].gain, rel=1e-4)
        assert c.score == pytest.approx(candidates[c.seed_id].score, rel=1e-4)


def test_a_run_with_the_expand_policy_logs_each_decision_with_its_candidates(tmp_path):
    config = {**QUICK, "controller": {"name": "expand", "patience": 1, "options": {"threshold": 0.0}}}
    config["model"] = {"hidden_dim": 4, "num_layers": 1, "width_seeds": 1}
    torch.manual_seed(0)
    result = kaslite.fit(None, xor(), config=config, run_dir=tmp_path / "run")
    lines = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    decisions = [e for e in lines if e["event"] == "growth_decision"]
    in_memory = [e for e in result.events if e["event"] == "growth_decision"]
    assert decisions and decisions == json.loads(json.dumps(in_memory))
    for decision in decisions:
        scores = [c["score"] for c in decision["candidates"]]
        assert scores == sorted(scores, reverse=True)
        assert {c["kind"] for c in decision["candidates"]} <= {"deep", "width", "wide"}
    chosen = [d for d in decisions if d["chosen"]]
    assert chosen and all(d["chosen"] == [d["candidates"][0]["seed_id"]] for d in chosen)  # the best of them
    germinated = [e["seed_id"] for e in lines if e["event"] == "seed_transition" and e["to_state"] == "training"]
    assert germinated == [d["chosen"][0] for d in chosen]
