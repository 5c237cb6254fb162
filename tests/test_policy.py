"""differ.Policy: a trained team acting on the raw package env, outside differ, takes exactly the
greedy actions `differ evaluate` takes on the same episode seeds."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.envs.registration import load_env_creator
from omegaconf import OmegaConf

import differ
from differ.acting.evaluation import evaluate_episodes
from differ.acting.runner import Runner
from differ.acting.schedules import EVALUATION_FIRST_EPISODE, TEST, episode_seeds
from differ.assemble import assemble, make_envs
from differ.config import build_config
from differ.store import checkpoint as ckpt

from .conftest import TINY_LBF, run_cli
from .pz_envs import Signals

EPISODES = 3


def evaluate_with_actions(run_dir, episodes=EPISODES):
    """The greedy episodes `differ evaluate RUN episodes=N` plays, kept with their actions."""
    payload = ckpt.load_newest(run_dir)[1]
    cfg = build_config({}, base=OmegaConf.create(payload["config"]))
    env, test_env = make_envs(cfg)
    learner = assemble(cfg, env.spec)
    learner.load_state_dict(payload["learner"])
    kept = []
    evaluate_episodes(Runner(test_env, learner.controller()), cfg.seed, EVALUATION_FIRST_EPISODE, episodes, kept)
    env.close()
    seeds = [episode_seeds(cfg.seed, TEST, EVALUATION_FIRST_EPISODE + k, 1)[0] for k in range(episodes)]
    return cfg, kept, seeds


def test_policy_on_raw_lbf_reproduces_evaluate(tmp_path):
    run = tmp_path / "lbf"
    run_cli("train", *TINY_LBF, "algo=qmix_differ", "t_max=600", "seed=4", f"run_dir={run}")
    cfg, kept, seeds = evaluate_with_actions(run)
    policy = differ.Policy.load(run)
    assert policy.transform.scale is not None  # LBF's observation scaling travels with the policy
    spec = gym.spec(cfg.env.scenario)
    for ep, seed in zip(kept, seeds):
        # the unmodified lbforaging env, one fresh copy per episode
        env = load_env_creator(spec.entry_point)(**{**spec.kwargs, "max_episode_steps": cfg.env.time_limit})
        obs, _ = env.reset(seed=int(seed))
        policy.reset(1)
        for t in range(ep.length):
            avail = [[a in {v.value for v in env._valid_actions[p]} for a in range(6)] for p in env.players]
            actions = policy.act([obs], [avail])[0]
            np.testing.assert_array_equal(actions, ep.actions[t])
            obs, *_ = env.step(actions.tolist())


def test_policy_on_raw_pettingzoo_env_with_deaths(tmp_path):
    run = tmp_path / "signals"
    run_cli(
        "train",
        "env=pettingzoo",
        "env.scenario=tests.pz_envs:Signals",
        "algo=vdn_differ",
        "t_max=600",
        "seed=2",
        "test_episodes=2",
        "algo.batch_size=4",
        "algo.buffer_size=50",
        f"run_dir={run}",
    )
    _, kept, seeds = evaluate_with_actions(run)
    policy = differ.Policy.load(ckpt.latest(run))  # a checkpoint file works as well as a run directory
    dead_steps = replay_on_signals(policy, kept, seeds)
    assert dead_steps > 0  # the episodes exercised dead agents


def replay_on_signals(policy, kept, seeds) -> int:
    """Play each kept episode's seed on the raw Signals env with `policy`: it must take the
    episode's actions at every step, and never a masked one. Returns the dead agents' steps."""
    dead_steps = 0
    for ep, seed in zip(kept, seeds):
        env = Signals()
        obs, infos = env.reset(seed=int(seed))
        policy.reset(1)
        for t in range(ep.length):
            # what the raw env gives: dicts for the carrier, info masks for scouts, nobody for the dead
            row = [obs[a] if a in env.agents else None for a in env.possible_agents]
            masks = [infos.get(a, {}).get("action_mask") for a in env.possible_agents]
            dead_steps += sum(o is None for o in row)
            actions = policy.act([row], [masks])[0]
            np.testing.assert_array_equal(actions, ep.actions[t])
            obs, _, _, _, infos = env.step(
                {a: int(actions[i]) for i, a in enumerate(env.possible_agents) if a in env.agents}
            )
        assert env.masked_taken == 0
    return dead_steps


def test_policy_errors_and_shapes(tmp_path):
    with pytest.raises(differ.CheckpointError, match="does not exist"):
        differ.Policy.load(tmp_path / "nothing")
    run = tmp_path / "lbf"
    run_cli("train", *TINY_LBF, "t_max=200", f"run_dir={run}")
    policy = differ.Policy.load(run)
    policy.reset(2)
    zero = [np.zeros(d) for d in policy.transform.dims]
    assert policy.act([zero, zero]).shape == (2, policy.n_agents)
    with pytest.raises(ValueError, match="after reset"):
        policy.act([zero])
    with pytest.raises(ValueError, match="values, expected"):
        policy.act([[np.zeros(3)] * policy.n_agents] * 2)


def test_a_checkpoint_from_before_the_policy_record_loads(tmp_path):
    run = tmp_path / "lbf"
    run_cli("train", *TINY_LBF, "t_max=200", f"run_dir={run}")
    payload = ckpt.load(ckpt.latest(run))
    old = dict(payload)
    del old["policy"]
    path = ckpt.save(tmp_path / "old", 200, old)
    new, rebuilt = differ.Policy.load(run), differ.Policy.load(path)
    assert rebuilt.record == new.record
    obs = [[np.ones(d) for d in new.transform.dims]]
    new.reset(1), rebuilt.reset(1)
    np.testing.assert_array_equal(new.act(obs), rebuilt.act(obs))
