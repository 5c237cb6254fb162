"""MASER (the paper's baseline): subgoals over valid steps only, intrinsic rewards, the reward hook,
and its reduction to QMIX with λ = 0 and no individual term."""

import pytest
import torch
from torch import nn

from differ.assemble import assemble
from differ.commands.verify import random_batch
from differ.config import build_config
from differ.learners.maser import at_steps, intrinsic_rewards, subgoal_steps

from .conftest import TINY_LBF, run_cli


def test_subgoal_is_the_best_valid_step_never_padding():
    B, T, N = 3, 5, 2
    g = torch.Generator().manual_seed(0)
    q_ind = torch.rand(B, T, N, generator=g, dtype=torch.float64)
    q_tot = torch.rand(B, T, generator=g, dtype=torch.float64)
    mask = torch.ones(B, T, dtype=torch.float64)
    mask[0, 3:] = 0  # episode 0 lasts 3 steps, episode 1 lasts 1
    mask[1, 1:] = 0
    q_ind[0, 4] = 100.0  # padded steps with the highest scores
    q_tot[1, 2] = 100.0
    alpha = 0.3
    t_star = subgoal_steps(q_ind, q_tot, mask, alpha)
    for b in range(B):
        valid = int(mask[b].sum())
        for i in range(N):
            score = [alpha * q_ind[b, t, i] + (1 - alpha) * q_tot[b, t] / N for t in range(valid)]
            assert t_star[b, i] == max(range(valid), key=lambda t: score[t])
    assert (t_star[1] == 0).all()


def test_intrinsic_reward_is_zero_at_the_subgoal_and_negative_elsewhere():
    torch.manual_seed(0)
    B, T, N, O = 2, 6, 3, 4
    obs = torch.randn(B, T, N, O, dtype=torch.float64)
    t_star = torch.tensor([[0, 5, 2], [3, 3, 1]])
    goal = at_steps(obs, t_star)  # the subgoal observations
    assert torch.equal(goal[1, 2], obs[1, 1, 2]) and torch.equal(goal[0, 1], obs[0, 5, 1])
    phi = nn.Sequential(nn.Linear(O, 16), nn.ReLU(), nn.Linear(16, 5)).double()
    r = intrinsic_rewards(phi, obs, t_star)
    at_goal = torch.zeros_like(r, dtype=torch.bool)
    for b in range(B):
        for i in range(N):
            at_goal[b, t_star[b, i], i] = True
    assert (r[at_goal] == 0).all() and (r[~at_goal] < 0).all()


@pytest.fixture(scope="module")
def smax_batch():
    return random_batch("smax", "2s3z", episodes=4)


def _learner(spec, **overrides):
    cfg = build_config({"env.scenario": "2s3z", "algo.grad_clip": "1e9", **overrides})
    L = assemble(cfg, spec)
    for m in [L.agent, L.mixer, L.target_agent, L.target_mixer] + ([L.phi] if hasattr(L, "phi") else []):
        m.double()
    return L


def test_maser_without_intrinsic_reward_and_individual_term_is_qmix(smax_batch):
    spec, b = smax_batch
    qmix = _learner(spec, algo="qmix")
    maser = _learner(spec, algo="maser", **{"algo.maser.intrinsic_weight": "0", "algo.maser.individual_weight": "0"})
    maser.agent.load_state_dict(qmix.agent.state_dict())
    maser.mixer.load_state_dict(qmix.mixer.state_dict())
    for L in (qmix, maser):
        L.update_targets()
    s_q, s_m = qmix.train(b), maser.train(b)
    assert s_m["loss_td"] == pytest.approx(s_q["loss_td"], rel=1e-12)
    for p, q in zip(maser.params, qmix.params):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-14)


def test_the_reward_hook_shapes_the_team_target(smax_batch):
    spec, b = smax_batch
    L = _learner(spec, algo="maser")
    fwd = L.forward(b)
    r_int = fwd.extras["intrinsic"]
    torch.testing.assert_close(fwd.reward, b.reward + 0.03 * r_int.mean(-1))
    _, y, _ = L.team_td(fwd, b, fwd.chosen)
    torch.testing.assert_close(y, fwd.reward + L.cfg.gamma * (1 - b.terminated) * fwd.target_tot)
    assert (fwd.reward != b.reward).any()


@pytest.mark.parametrize("train_phi", ["false", "true"])
def test_maser_trains_and_resumes(tmp_path, train_phi):
    run_dir = tmp_path / "run"
    run_cli("train", "algo=maser", f"algo.maser.train_phi={train_phi}", *TINY_LBF, "t_max=300", f"run_dir={run_dir}")
    run_cli("train", f"resume={run_dir}", "t_max=500")
    out = run_cli("evaluate", str(run_dir), "episodes=2").stdout
    assert '"t_env": 5' in out
