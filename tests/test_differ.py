"""DIFFER: gradient invariance (Eq. 1) on real SMAX batches, the -divide equivalence through the
real training step, Eq. 2, and fair experience replay's sampling."""

import copy

import pytest
import torch
from omegaconf import OmegaConf

from differ.commands.verify import learner_for as verify_learner
from differ.commands.verify import random_batch
from differ.config import AlgoConfig, build_config
from differ.learners.decomposer import decompose
from differ.nets.mixers import MixerInput
from differ.replay.fair import beta_at, eta_at, fair_weights


def real_batch(env_name, scenario, episodes=6, seed=0, time_limit=None):
    """A batch of real episodes (random policy): padding, terminal steps and, on SMAX, deaths."""
    return random_batch(env_name, scenario, episodes, seed, time_limit)


@pytest.fixture(scope="module")
def smax_batch():
    spec, batch = real_batch("smax", "2s3z")
    assert (batch.mask == 0).any(), "the batch has padding"
    assert batch.terminated.sum() > 0, "the batch has terminal steps"
    died = batch.alive[:, :-1] & ~batch.alive[:, 1:]
    assert died.any(), "agents die inside the batch"
    return spec, batch


def learner_for(spec, mixer_name, learner="team", selection="all", **algo):
    """A float64 learner with no gradient clipping, seeded like `differ verify`'s."""
    cfg = OmegaConf.create({"seed": 0, "algo": OmegaConf.structured(AlgoConfig(mixer=mixer_name, **algo))})
    return verify_learner(cfg, spec, learner, selection)


def grads(loss, params):
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params, retain_graph=True)])


def rel_err(a, b):
    return ((a - b).norm() / b.norm()).item()


@pytest.mark.parametrize("mixer", ["vdn", "qmix", "qplex"])
def test_gradient_invariance_eq1(smax_batch, mixer):
    spec, b = smax_batch
    L = learner_for(spec, mixer)
    params = list(L.agent.parameters())
    fwd = L.forward(b)
    dec = decompose(
        L.mixer, fwd.mixer_in, b.reward, b.terminated, b.mask, b.alive, fwd.target_q, fwd.target_tot, L.cfg.gamma
    )
    n = b.mask.sum()
    delta_i = fwd.chosen - dec.y_i
    alive_t = b.alive[:, :-1]

    # team mask on both sides: Σ_i ∂L_i/∂θp == ∂L_tot/∂θp
    _, _, delta = L.team_td(fwd, b, fwd.chosen)
    team = grads((delta**2).sum() / n, params)
    ind = grads((b.mask.unsqueeze(-1) * delta_i**2).sum() / n, params)
    assert rel_err(ind, team) <= 1e-6

    # dead agents' terms removed on both sides: their Q_i enter the mixer without gradient, and
    # the individual mask (which keeps the step of death) drops them
    q_in = torch.where(alive_t, fwd.chosen, fwd.chosen.detach())
    _, _, delta_alive = L.team_td(fwd, b, q_in)
    team_alive = grads((delta_alive**2).sum() / n, params)
    ind_alive = grads((dec.mask_i * delta_i**2).sum() / n, params)
    assert rel_err(ind_alive, team_alive) <= 1e-6
    if mixer != "vdn":  # the death mask is a real difference: a dead unit's "stop" reaches QMIX / QPLEX
        assert rel_err(team_alive, team) > 1e-6
    else:
        torch.testing.assert_close(dec.g, torch.ones_like(dec.g))  # VDN: g_i = 1 exactly


def test_reward_i_matches_eq2_and_delta_i_is_g_delta(smax_batch):
    spec, b = smax_batch
    L = learner_for(spec, "qmix")
    fwd = L.forward(b)
    dec = decompose(
        L.mixer, fwd.mixer_in, b.reward, b.terminated, b.mask, b.alive, fwd.target_q, fwd.target_tot, L.cfg.gamma
    )
    gamma = L.cfg.gamma
    # independent computation: g by finite differences of the mixer in float64
    q = fwd.chosen.detach()
    q_tot = L.mixer(q, b.state[:, :-1]).detach()
    g_fd = torch.zeros_like(q)
    h = 1e-6
    for i in range(spec.n_agents):
        dq = torch.zeros_like(q)
        dq[..., i] = h
        g_fd[..., i] = (L.mixer(q + dq, b.state[:, :-1]) - L.mixer(q - dq, b.state[:, :-1])).detach() / (2 * h)
    torch.testing.assert_close(dec.g, g_fd, rtol=1e-5, atol=1e-7)
    died = (b.alive[:, :-1] & ~b.alive[:, 1:]).double()
    d_i = torch.maximum(died, b.terminated.unsqueeze(-1).expand_as(died))
    y_tot = b.reward + gamma * (1 - b.terminated) * fwd.target_tot
    r_i = (y_tot - q_tot).unsqueeze(-1) * g_fd - gamma * (1 - d_i) * fwd.target_q + q
    torch.testing.assert_close(dec.reward_i, r_i, rtol=1e-5, atol=1e-6)
    delta = q_tot - y_tot
    torch.testing.assert_close(q - dec.y_i, dec.g * delta.unsqueeze(-1), rtol=1e-9, atol=1e-10)
    # the individual mask keeps the step of death and drops the later ones
    m = dec.mask_i.bool()
    assert (m[died.bool() & b.mask.bool().unsqueeze(-1)]).all()
    assert not m[~b.alive[:, :-1]].any()


@pytest.mark.parametrize("mixer", ["qmix", "qplex"])
def test_divide_agent_gradient_equals_the_base_method_through_the_training_step(mixer):
    spec, b = real_batch("lbf", "Foraging-8x8-2p-3f-v3", episodes=4, time_limit=20)
    assert b.alive.all(), "a batch without deaths"
    qmix = learner_for(spec, mixer)
    divide = learner_for(spec, mixer, learner="differ", selection="all")
    divide.agent.load_state_dict(qmix.agent.state_dict())
    divide.mixer.load_state_dict(qmix.mixer.state_dict())
    divide.update_targets()
    qmix.update_targets()
    qmix.train(b)
    divide.train(b)
    g_qmix = torch.cat([p.grad.reshape(-1) for p in qmix.agent.parameters()])
    g_div = torch.cat([p.grad.reshape(-1) for p in divide.agent.parameters()])
    n_team, n_ind = b.mask.sum(), b.mask.sum() * spec.n_agents  # |E| = N Σm without deaths
    assert rel_err(g_div, g_qmix * n_team / n_ind) <= 1e-6


def test_fair_sampling_matches_priorities_chi_square():
    g = torch.Generator().manual_seed(0)
    td = torch.rand(4, 6, 3, generator=g, dtype=torch.float64) * 2
    valid = torch.rand(4, 6, 3, generator=g) > 0.3
    alpha, eps = 0.8, 0.01
    totals = torch.zeros_like(td)
    rounds = 400
    for _ in range(rounds):
        _, counts = fair_weights(td, valid, eta=1.0, beta=0.6, alpha=alpha, eps=eps, generator=g)
        totals += counts
        assert not counts[~valid].any(), "masked elements are never drawn"
        assert counts.sum() == int(valid.sum())  # n = ⌊η·|E|⌋
    p = ((td + eps) ** alpha) * valid
    expected = (p / p.sum())[valid] * totals.sum()
    observed = totals[valid]
    chi2 = (((observed - expected) ** 2) / expected).sum().item()
    df = int(valid.sum()) - 1
    assert chi2 < df + 3.09 * (2 * df) ** 0.5  # ~ the 0.1% critical value
    # and the same draws are far from uniform ones
    uniform = torch.full_like(observed, observed.sum() / observed.numel())
    assert (((observed - uniform) ** 2) / uniform).sum().item() > df + 3.09 * (2 * df) ** 0.5


def test_is_weights_and_counts():
    g = torch.Generator().manual_seed(1)
    td = torch.rand(3, 5, 2, generator=g, dtype=torch.float64)
    valid = torch.ones(3, 5, 2, dtype=torch.bool)
    valid[0, 3:] = False
    weights, counts = fair_weights(td, valid, eta=0.8, beta=0.7, alpha=0.8, eps=0.01, generator=g)
    assert counts.sum() == int(0.8 * valid.sum())
    p = ((td + 0.01) ** 0.8) * valid
    P = p / p.sum()
    w = (1 / (valid.sum() * P[valid])) ** 0.7
    is_w = torch.zeros_like(td)
    is_w[valid] = w / w.max()
    assert is_w.max() == 1.0
    torch.testing.assert_close(weights, counts * is_w)


def test_eta_and_beta_schedules():
    cfg = build_config({"algo": "qmix_differ"}).algo.differ
    t_max = 1000
    assert eta_at(0, t_max, cfg) == pytest.approx(0.8) and beta_at(0, t_max, cfg) == pytest.approx(0.6)
    assert eta_at(300, t_max, cfg) == pytest.approx(0.9)
    assert eta_at(600, t_max, cfg) == pytest.approx(1.0) and beta_at(600, t_max, cfg) == pytest.approx(0.84)
    assert eta_at(1000, t_max, cfg) == pytest.approx(1.0) and beta_at(1000, t_max, cfg) == pytest.approx(1.0)
    cfg.eta_warmup, cfg.eta_start = False, 0.94
    assert eta_at(0, t_max, cfg) == eta_at(1000, t_max, cfg) == pytest.approx(0.94)


def test_vdn_differ_has_no_mixer_optimiser_and_logs_diagnostics(smax_batch):
    spec, b = smax_batch
    L = learner_for(spec, "vdn", learner="differ", selection="per")
    assert L.mixer_optimiser is None
    stats = L.train(b, t_env=0)
    for key in (
        "loss_mixer",
        "loss_agents",
        "grad_norm_agents",
        "selected_ratio",
        "beta",
        "reward_i_mean",
        "td_error_ind_abs",
        "td_ind_std_norm",
        "sample_share/stalker",
        "sample_share/zealot",
        "sample_share/agent_0",
    ):
        assert key in stats, key
    assert stats["selected_ratio"] == pytest.approx(0.8)
    assert stats["sample_share/stalker"] + stats["sample_share/zealot"] == pytest.approx(1.0)
    q = learner_for(spec, "qmix", learner="differ", selection="per")
    before = copy.deepcopy(q.mixer.state_dict())
    assert "grad_norm_mixer" in q.train(b, t_env=0)
    assert any(not torch.equal(before[k], v) for k, v in q.mixer.state_dict().items()), "the mixer learns"


def test_qplex_g_is_its_weight_head(smax_batch):
    """With the advantage term detached (as in QPLEX's reference code), ∂Q_tot/∂Q_i = w_i(s) =
    |MLP_w(s)| + 1e-10, elementwise, whatever λ and the actions are."""
    spec, b = smax_batch
    L = learner_for(spec, "qplex", learner="differ", selection="per")
    fwd = L.forward(b)
    dec = decompose(
        L.mixer, fwd.mixer_in, b.reward, b.terminated, b.mask, b.alive, fwd.target_q, fwd.target_tot, L.cfg.gamma
    )
    w = L.mixer.weight(b.state[:, :-1]).abs() + 1e-10
    torch.testing.assert_close(dec.g, w.detach(), rtol=1e-12, atol=0)


def test_qplex_lambda_depends_on_the_taken_actions(smax_batch):
    spec, b = smax_batch
    L = learner_for(spec, "qplex")
    fwd = L.forward(b)
    x = fwd.mixer_in
    q_tot = L.mixer(x)
    other = x.actions.clone()
    other[..., 0, :] = other[..., 0, :].roll(1, dims=-1)  # agent 0 takes the next action everywhere
    lam, lam_other = L.mixer.lam(x.state, x.actions.double()), L.mixer.lam(x.state, other.double())
    assert (lam - lam_other).abs().max() > 1e-6
    changed = (L.mixer(MixerInput(x.qs, x.state, other, x.max_qs)) - q_tot).abs()
    # where every agent's chosen Q_i is its max, the advantage term vanishes whatever λ is
    assert changed.max() > 1e-6
    with pytest.raises(ValueError, match="reads actions, max_qs"):
        L.mixer(x.qs, x.state)  # a QPLEX mixer needs the actions and max Q_i
