"""COMA (algo=coma, differ/learners/coma.py): the counterfactual baseline, the advantage of a forced
action, TD(λ) against the forward view, masked actions, exact resume, the one-line refusals, and
learning the Signals task of tests/pz_envs.py; evaluate and differ.Policy act with it unchanged."""

import json

import numpy as np
import pytest
import torch

import differ
from differ.acting.softmax import SoftmaxController, masked_policy, sample
from differ.assemble import assemble
from differ.config import build_config
from differ.envs.registry import make_env
from differ.learners.coma import ComaLearner, counterfactual_advantage, td_lambda_targets
from differ.nets.agent import RNNAgent
from differ.nets.coma_critic import ComaCritic
from differ.store import checkpoint as ckpt

from .conftest import read_jsonl, run_cli
from .test_policy import evaluate_with_actions, replay_on_signals
from .test_resume import kill_after_first_checkpoint, metrics_pair

SIGNALS = ["env=pettingzoo", "env.scenario=tests.pz_envs:Signals", "algo=coma", "torch_threads=1", "progress=false"]


def test_baseline_is_the_expectation_over_the_agents_own_action():
    """On a hand-made batch: Σ_u' π_a(u') Q(s, (u_-a, u')) with Q(s, (u_-a, u'))_a evaluated by
    putting u' into the joint action, one critic pass per u'."""
    torch.manual_seed(0)
    B, N, A, S, O = 3, 3, 4, 5, 6
    critic = ComaCritic(S, O, N, A, hidden=16).double()
    state, obs = torch.randn(B, 1, S).double(), torch.randn(B, 1, N, O).double()
    u = torch.randint(A, (B, 1, N))
    last = torch.randint(A + 1, (B, 1, N))
    avail = torch.rand(B, 1, N, A) < 0.7
    avail[..., 0] = True
    pi = masked_policy(torch.randn(B, 1, N, A).double(), avail, 0.2)
    q = critic(critic.inputs(state, obs, u, last))
    advantage, baseline = counterfactual_advantage(q, pi, u)
    for a in range(N):
        values = []
        for alt in range(A):
            joint = u.clone()
            joint[..., a] = alt  # (u_-a, u')
            values.append(critic(critic.inputs(state, obs, joint, last))[..., a, alt])
        direct = sum(pi[..., a, alt] * values[alt] for alt in range(A))
        torch.testing.assert_close(baseline[..., a], direct, rtol=1e-12, atol=1e-12)
        taken = torch.stack(values, -1).gather(-1, u[..., a, None]).squeeze(-1)
        torch.testing.assert_close(advantage[..., a], taken - direct, rtol=1e-12, atol=1e-12)


def test_the_only_available_action_has_zero_advantage():
    torch.manual_seed(1)
    B, N, A = 4, 2, 5
    avail = torch.zeros(B, N, A, dtype=torch.bool)
    only = torch.randint(A, (B, N))
    avail.scatter_(-1, only.unsqueeze(-1), True)
    for eps in (0.0, 0.5):
        pi = masked_policy(torch.randn(B, N, A) * 10, avail, eps)
        advantage, _ = counterfactual_advantage(torch.randn(B, N, A) * 100, pi, only)
        assert torch.equal(advantage, torch.zeros_like(advantage))


def forward_view(r, term, q, L, gamma, lam):
    """The λ-return of one episode from its definition: G^λ_t = (1 − λ) Σ_{n<L−t} λ^(n−1) G^(n)_t
    + λ^(L−t−1) G^(L−t)_t, G^(n)_t the n-step return bootstrapped from q[t+n] (from nothing
    where the episode terminated at its end)."""

    def n_step(t, n):
        g = sum(gamma**k * r[t + k] for k in range(n))
        end = t + n == L
        return g + (0.0 if end and term else gamma**n * q[t + n])

    out = []
    for t in range(L):
        m = L - t
        out.append((1 - lam) * sum(lam ** (n - 1) * n_step(t, n) for n in range(1, m)) + lam ** (m - 1) * n_step(t, m))
    return np.array(out)


@pytest.mark.parametrize("lam", [0.0, 0.8, 1.0])
def test_td_lambda_targets_match_the_forward_view(lam):
    """Two episodes padded to T = 5: one terminated after 3 steps, one truncated at 5."""
    rng = np.random.default_rng(0)
    B, T, N, gamma = 2, 5, 2, 0.9
    lengths, terminal = [3, 5], [True, False]
    reward = torch.tensor(rng.normal(size=(B, T)))
    q = torch.tensor(rng.normal(size=(B, T + 1, N)))
    mask, terminated = torch.zeros(B, T, dtype=torch.float64), torch.zeros(B, T, dtype=torch.float64)
    for b, (L, term) in enumerate(zip(lengths, terminal)):
        mask[b, :L] = 1
        terminated[b, L - 1] = float(term)
        reward[b, L:] = 0
    G = td_lambda_targets(reward, terminated, mask, q, gamma, lam)
    for b, (L, term) in enumerate(zip(lengths, terminal)):
        for i in range(N):
            expected = forward_view(reward[b].numpy(), term, q[b, :, i].numpy(), L, gamma, lam)
            np.testing.assert_allclose(G[b, :L, i].numpy(), expected, rtol=1e-12, atol=1e-12)
    # the truncated episode's last target bootstraps from its last state; the terminated one's does not
    assert G[1, 4, 0].item() == pytest.approx(reward[1, 4].item() + gamma * q[1, 5, 0].item())
    assert G[0, 2, 0].item() == pytest.approx(reward[0, 2].item())


def test_masked_actions_never_get_probability():
    torch.manual_seed(2)
    E, N, A = 64, 3, 6
    avail = torch.rand(E, N, A) < 0.5
    avail[torch.arange(E), :, torch.randint(A, (E,))] = True
    pi = masked_policy(torch.randn(E, N, A) * 5, avail, 0.3)
    assert torch.all(pi[~avail] == 0) and torch.allclose(pi.sum(-1), torch.ones(E, N))
    assert torch.all(pi[avail] >= 0.3 / A - 1e-7)  # the ε floor on every available action
    rng = np.random.default_rng(0)
    for _ in range(50):
        drawn = sample(pi.double().numpy(), rng)
        assert avail.gather(-1, torch.from_numpy(drawn).unsqueeze(-1)).all()
    # the controller, training and greedy: only available actions, greedy = argmax of π
    agent = RNNAgent(7, A, N)
    ctl = SoftmaxController(agent)
    ctl.start(E)
    obs = np.random.default_rng(1).normal(size=(E, N, 7)).astype(np.float32)
    for greedy in (False, True, False):
        actions = ctl.act(obs, avail.numpy(), 0.5, rng, greedy=greedy)
        assert np.take_along_axis(avail.numpy(), actions[..., None], -1).all()


def test_greedy_action_is_the_argmax_of_pi():
    torch.manual_seed(3)
    E, N, A = 16, 2, 5
    agent = RNNAgent(4, A, N)
    avail = torch.rand(E, N, A) < 0.6
    avail[..., 1] = True
    obs = np.random.default_rng(0).normal(size=(E, N, 4)).astype(np.float32)
    ctl = SoftmaxController(agent)
    ctl.start(E)
    actions = ctl.act(obs, avail.numpy(), 0.5, None, greedy=True)
    logits, _ = agent.step(torch.from_numpy(obs), torch.full((E, N), A), agent.init_hidden(E * N)[0])
    pi = masked_policy(logits, avail)
    np.testing.assert_array_equal(actions, pi.argmax(-1).numpy())


def test_learner_step_statistics_and_state_round_trip():
    cfg = build_config({"algo": "coma", "env": "pettingzoo", "env.scenario": "tests.pz_envs:Signals"})
    env = make_env("pettingzoo", "tests.pz_envs:Signals", 4, None, {"workers": 0})
    learner = assemble(cfg, env.spec)
    assert isinstance(learner, ComaLearner)
    from differ.acting.runner import Runner
    from differ.replay.episode_buffer import EpisodeBuffer

    eps = Runner(env, learner.controller()).run([0, 1, 2, 3], 0.5, np.random.default_rng(0))
    env.close()
    buf = EpisodeBuffer(env.spec, 4, "float32")
    for e in eps:
        buf.add_episode(e)
    stats = learner.train(buf.collate(list(buf.episodes)), 100)
    keys = {"loss_critic", "loss_actor", "grad_norm_critic", "grad_norm_actor", "advantage_mean", "pi_max"}
    assert keys | {"q_taken_mean"} <= set(stats) and all(np.isfinite(v) for v in stats.values())
    sd = learner.state_dict()
    assert {"agent", "critic", "target_critic", "agent_optimiser", "critic_optimiser", "bootstrap_generator"} <= set(sd)
    assert learner.critic_optimiser.param_groups[0]["lr"] == cfg.algo.coma.critic_lr


def test_sigkill_and_resume_is_the_uninterrupted_run(tmp_path):
    args = [*SIGNALS, "t_max=1500", "seed=3", "test_interval=300", "log_interval=300", "checkpoint_interval=400"]
    args += ["test_episodes=2", "algo.target_update_episodes=40"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    run_cli("train", *args, f"run_dir={full}")
    kill_after_first_checkpoint([*args, f"run_dir={killed}"], killed)
    assert ckpt.latest(killed) != ckpt.latest(full)
    run_cli("train", f"resume={killed}")
    a, b = metrics_pair(full, killed)
    assert len(a) == len(b) > 4 and any("loss_actor" in r for r in a)
    assert a == b
    assert read_jsonl(full / "eval.jsonl") == read_jsonl(killed / "eval.jsonl")


def test_one_line_refusals(tmp_path):
    p = run_cli("verify", "algo=coma", "env=pettingzoo", "env.scenario=tests.pz_envs:Signals", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines() == [
        "differ: error: algo=coma: COMA has no mixer to decompose (differ verify checks a mixer)"
    ]
    p = run_cli("train", *SIGNALS[:1], "env.scenario=tests.pz_envs:BoxActions", "algo=coma", "t_max=50",
                f"run_dir={tmp_path / 'box'}", check=False)  # fmt: skip
    assert p.returncode != 0 and len(p.stderr.strip().splitlines()) == 1
    assert "algo=coma acts in discrete action spaces" in p.stderr


LEARN_T_MAX, LEARN_RETURN = 6000, 20.0  # Signals: a random policy gets about 7, the best 36


def test_coma_learns_signals_and_evaluate_and_policy_work(tmp_path):
    """From a test return near the random policy's to LEARN_RETURN within LEARN_T_MAX steps
    (about 15 s of training); then `differ evaluate` and differ.Policy act with the run."""
    run = tmp_path / "signals"
    args = [*SIGNALS, f"t_max={LEARN_T_MAX}", "seed=1", "test_interval=1000", "log_interval=1000", "test_episodes=8"]
    run_cli("train", *args, f"run_dir={run}")
    tests = [r["test_return_mean"] for r in read_jsonl(run / "metrics.jsonl") if "test_return_mean" in r]
    assert tests[0] < 12 and tests[-1] >= LEARN_RETURN, tests
    ev = run_cli("evaluate", str(run), "episodes=4")
    assert ev.returncode == 0
    # differ.Policy takes the greedy actions evaluate takes
    _, kept, seeds = evaluate_with_actions(run, episodes=3)
    replay_on_signals(differ.Policy.load(run), kept, seeds)
    json.loads((run / "result.json").read_text())
