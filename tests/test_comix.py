"""COMIX on continuous actions: CEM, acting and training agreeing on the recurrent state, DIFFER's
identities on real MaMuJoCo batches, end-to-end runs and exact resume."""

import json

import numpy as np
import pytest
import torch

from differ.acting.runner import Runner
from differ.assemble import assemble, make_envs
from differ.commands.verify import verify
from differ.config import build_config
from differ.nets.cem import cem_argmax

from .conftest import read_jsonl, run_cli
from .test_resume import metrics_pair, uninterrupted_and_resumed

TINY = [
    "env=mamujoco",
    "algo.batch_size=4",
    "algo.buffer_size=50",
    "test_episodes=2",
    "test_interval=150",
    "log_interval=150",
    "torch_threads=1",
]


def test_cem_stays_in_bounds_and_finds_the_maximiser():
    g = torch.Generator().manual_seed(0)
    low = torch.tensor([[-0.4] * 9, [-0.4] * 8 + [0.0]])
    high = torch.tensor([[0.4] * 9, [0.4] * 8 + [0.0]])  # agent 1 has 8 dimensions, padded to 9
    net = torch.nn.Sequential(torch.nn.Linear(9, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
    with torch.no_grad():
        a = cem_argmax(lambda c: net(c).squeeze(-1), (5, 2), low, high, g)
    assert a.shape == (5, 2, 9) and (a >= low).all() and (a <= high).all() and (a[:, 1, 8] == 0).all()
    # 2-D quadratics (the swimmer's action size): the maximiser within 0.1 in every dimension
    low2, high2 = torch.full((10, 2), -1.0), torch.full((10, 2), 1.0)
    best = torch.empty(10, 2).uniform_(-0.8, 0.8, generator=g)
    a = cem_argmax(lambda c: -((c - best) ** 2).sum(-1), (10,), low2, high2, g)
    assert (a - best).abs().max() < 0.1
    # 9-D (Humanoid): 2 rounds of 64 beat 128 uniform random candidates on most problems
    best9 = torch.empty(200, 9).uniform_(-0.3, 0.3, generator=g)
    q = lambda c: -((c - best9) ** 2).sum(-1)  # noqa: E731
    cem = q(cem_argmax(q, (200,), low[:1].expand(200, 9), high[:1].expand(200, 9), g)[None])[0]
    rand = q(torch.rand(128, 200, 9, generator=g) * 0.8 - 0.4).max(0).values
    assert (cem > rand).float().mean() > 0.8


@pytest.mark.parametrize("scenario", ["Humanoid-9|8", "ManySegmentSwimmer-10x2"])
def test_acting_and_training_unroll_agree(scenario):
    """The GRU state the controller acts from equals the training unroll's on the taken actions."""
    cfg = build_config({"algo": "comix", "env": "mamujoco", "env.scenario": scenario, "env.time_limit": "30"})
    env, _ = make_envs(cfg)
    learner = assemble(cfg, env.spec)
    controller = learner.controller()
    hiddens, act = [], controller.act

    def recording_act(*args, **kw):
        out = act(*args, **kw)
        hiddens.append(controller.hidden[0].view(env.spec.n_agents, -1).clone())
        return out

    controller.act = recording_act
    (ep,) = Runner(env, controller).run([5], 0.0, np.random.default_rng(1))
    env.close()
    assert np.abs(ep.actions).max() > 0  # noise and CEM actions were taken
    obs = torch.from_numpy(ep.obs[None]).float()
    la = torch.cat([torch.zeros(1, 1, *ep.actions.shape[1:]), torch.from_numpy(ep.actions[None])], 1)
    with torch.no_grad():
        h, _ = learner.agent.hiddens(obs, la)
    for t in range(ep.length):
        torch.testing.assert_close(h[0, t], hiddens[t], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("algo,scenario", [("comix_differ", "Humanoid-9|8"), ("comix", "ManySegmentSwimmer-10x2")])
def test_differ_is_exact_for_comix_on_real_batches(algo, scenario):
    r = verify({"algo": algo, "env": "mamujoco", "env.scenario": scenario, "env.time_limit": "40"}, episodes=3)
    assert r["exact"] and r["eq1_rel_error"] < 1e-9 and r["divide_rel_error"] < 1e-9


@pytest.mark.parametrize("scenario", ["Humanoid-9|8", "ManySegmentSwimmer-10x2"])
def test_train_and_evaluate_end_to_end(tmp_path, scenario):
    run = tmp_path / "r"
    out = json.loads(
        run_cli(
            "train",
            *TINY,
            "algo=comix_differ",
            f"env.scenario={scenario}",
            "env.time_limit=40",
            "t_max=500",
            f"run_dir={run}",
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    assert out["t_env"] >= 500 and out["train_steps"] > 0
    rec = [r for r in read_jsonl(run / "metrics.jsonl") if "loss_agents" in r]
    assert rec and all(np.isfinite(r["loss_agents"]) and np.isfinite(r["loss_mixer"]) for r in rec)
    ev = json.loads(run_cli("evaluate", str(run), "episodes=2").stdout)
    assert ev["episodes"] == 2 and ev["ep_length_mean"] <= 40


def test_resume_after_sigkill_matches_uninterrupted_run(tmp_path):
    common = [
        *TINY,
        "algo=comix_divide",
        "env.scenario=ManySegmentSwimmer-10x2",
        "env.time_limit=30",
        "t_max=900",
        "checkpoint_interval=300",
        "seed=2",
    ]
    a, b = metrics_pair(*uninterrupted_and_resumed(common, tmp_path))
    assert len(a) == len(b) > 4 and a == b


def test_policy_acts_on_raw_mamujoco(tmp_path):
    from gymnasium_robotics import mamujoco_v1

    import differ

    run = tmp_path / "r"
    run_cli(
        "train", *TINY, "algo=comix", "env.scenario=Humanoid-9|8", "env.time_limit=20", "t_max=200", f"run_dir={run}"
    )
    policy = differ.Policy.load(run)
    env = mamujoco_v1.parallel_env("Humanoid", "9|8", agent_obsk=0)  # the raw package env
    obs, _ = env.reset(seed=3)
    policy.reset(1)
    for _ in range(5):
        a = policy.act([[obs[ag] for ag in env.possible_agents]])[0]
        assert a.shape == (2, 9) and np.abs(a).max() <= 0.4 + 1e-6 and a[1, 8] == 0
        obs, *_ = env.step({ag: a[i, : policy.agent_actions[i]] for i, ag in enumerate(env.possible_agents)})
