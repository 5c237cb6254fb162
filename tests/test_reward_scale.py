"""env.reward_scale (the team reward multiplied before anything sees it) and fair replay's health
check (fair_top10_share, td_ind_over_eps, the near-uniform warning)."""

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from differ.config import build_config
from differ.envs.registry import make_env
from differ.replay.fair import fair_health, fair_weights

from .conftest import TINY_LBF, TINY_SMAX, read_jsonl, run_cli
from .test_resume import kill_after_first_checkpoint, metrics_pair


@pytest.mark.parametrize("family, scenario, n", [("lbf", "Foraging-8x8-2p-3f-v3", 2), ("smax", "3m", 2)])
def test_the_env_layer_gives_k_times_the_reward_for_the_same_actions(family, scenario, n):
    rewards = {}
    for k in (1.0, 10.0):
        env = make_env(family, scenario, n, 30, {}, reward_scale=k)
        rng = np.random.default_rng(0)
        o, got = env.reset([11, 12]), []
        for _ in range(30):
            avail = o.avail
            actions = np.stack([[rng.choice(np.flatnonzero(a)) for a in e] for e in avail])
            res = env.step(actions)
            got.append(res.reward.copy())
            o = res.next
        env.close()
        rewards[k] = np.stack(got)
    assert rewards[1.0].dtype == rewards[10.0].dtype == np.float32
    assert np.abs(rewards[1.0]).sum() > 0  # something was rewarded, so the scale is visible
    np.testing.assert_allclose(rewards[10.0], 10 * rewards[1.0], rtol=1e-6)


def test_smax_defaults_to_smacs_scale_and_others_keep_theirs():
    assert build_config({"env": "smax"}).env.reward_scale == 10
    assert build_config({}).env.reward_scale == 10  # smax is the default env
    for env in ("lbf", "rware", "mpe", "mamujoco", "grf"):
        assert build_config({"env": env, "algo": "comix" if env == "mamujoco" else "qmix"}).env.reward_scale == 1
    assert build_config({"env": "smax", "env.reward_scale": "1"}).env.reward_scale == 1


def test_both_targets_and_the_individual_rewards_see_the_scaled_reward():
    """The same networks and episodes with the reward times k: the team target moves by (k − 1)·R
    and DIFFER's r_i by (k − 1)·R·g_i, exactly (Eq. 2 is linear in R)."""
    from differ.acting.runner import Runner
    from differ.assemble import assemble
    from differ.learners.decomposer import decompose_step
    from differ.replay.episode_buffer import EpisodeBuffer

    cfg = build_config({"algo": "qmix_differ", "env": "smax", "env.reward_scale": "1"})
    env = make_env("smax", "3m", 4, 40, dict(cfg.env.options))
    learner = assemble(cfg, env.spec)
    episodes = Runner(env, learner.controller()).run([1, 2, 3, 4], 1.0, np.random.default_rng(0))
    env.close()
    out = {}
    for k in (1.0, 7.0):
        buf = EpisodeBuffer(env.spec, 4, "float32")
        for ep in episodes:
            ep_k = type(ep)({**ep.data, "reward": ep.reward * np.float32(k)}, ep.terminated, ep.stats)
            buf.add_episode(ep_k)
        batch = buf.collate(list(buf.episodes))
        with torch.no_grad():
            fwd = learner.forward(batch)
        dec = decompose_step(learner.mixer, fwd, batch, cfg.algo.gamma)
        out[k] = (batch.reward, dec)
    (r1, d1), (r7, d7) = out[1.0], out[7.0]
    assert r1.abs().sum() > 0
    torch.testing.assert_close(r7, 7 * r1)
    torch.testing.assert_close(d7.y_tot - d1.y_tot, 6 * r1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d7.reward_i - d1.reward_i, 6 * r1.unsqueeze(-1) * d1.g, rtol=1e-5, atol=1e-5)


def test_logged_returns_scale(tmp_path):
    """Random acting (ε = 1 throughout) collects the same episodes at both scales: every logged
    training return is k times the unscaled one."""
    common = ["algo=qmix", *TINY_LBF, "t_max=600", "seed=5", "algo.epsilon_start=1", "algo.epsilon_finish=1"]
    for k in (1, 10):
        run_cli("train", *common, f"env.reward_scale={k}", f"run_dir={tmp_path / str(k)}")
    a, b = (read_jsonl(tmp_path / str(k) / "metrics.jsonl") for k in (1, 10))
    ra = [r["return_mean"] for r in a if "return_mean" in r]
    rb = [r["return_mean"] for r in b if "return_mean" in r]
    assert len(ra) == len(rb) > 3 and sum(ra) > 0
    np.testing.assert_allclose(rb, 10 * np.asarray(ra), rtol=1e-5)


def test_reward_scale_is_range_checked_and_cannot_change_on_resume(tmp_path):
    for bad in ("0", "-1", "inf", "nan"):
        p = run_cli("train", f"env.reward_scale={bad}", f"run_dir={tmp_path / 'x'}", check=False)
        assert p.returncode == 2 and "env.reward_scale must be a number in (0, inf)" in p.stderr
        assert "Traceback" not in p.stderr and not (tmp_path / "x").exists()


def test_fair_top10_share_on_hand_made_priorities():
    g = torch.Generator().manual_seed(0)
    valid = torch.ones(20, 50, 4, dtype=torch.bool)
    valid[:, 40:] = False  # padding: never counted
    uniform = torch.full(valid.shape, 0.3)
    _, counts = fair_weights(uniform, valid, 1.0, 0.6, 0.8, 0.01, g)
    h = fair_health(uniform, valid, counts, 0.01)
    assert h["fair_top10_share"] == pytest.approx(0.10, abs=0.01)
    assert h["td_ind_over_eps"] == pytest.approx(30.0)
    # below ε the priorities flatten: tiny TD errors spread 100-fold still draw almost uniformly
    tiny = torch.rand(valid.shape, generator=g) * 1e-4
    _, counts = fair_weights(tiny, valid, 1.0, 0.6, 0.8, 0.01, g)
    assert fair_health(tiny, valid, counts, 0.01)["fair_top10_share"] < 0.11
    # one huge δ takes nearly every draw
    huge = tiny.clone()
    huge[3, 7, 1] = 1e6
    _, counts = fair_weights(huge, valid, 1.0, 0.6, 0.8, 0.01, g)
    assert fair_health(huge, valid, counts, 0.01)["fair_top10_share"] > 0.99
    # a draw on an element outside the top 10% only: share 0
    counts = torch.zeros(valid.shape)
    counts[0, 0, 0] = 5
    assert (
        fair_health(torch.arange(valid.numel()).view(valid.shape).float(), valid, counts, 1.0)["fair_top10_share"] == 0
    )


def test_a_run_whose_fair_replay_stays_uniform_warns_once_and_records_it(tmp_path):
    # per_eps far above every |δ_i|: the priorities are flat, the draws uniform
    args = [
        "algo=qmix_differ",
        *TINY_LBF,
        "t_max=1500",
        "algo.epsilon_anneal_steps=0",
        "algo.differ.per_eps=1000",
        f"run_dir={tmp_path / 'flat'}",
    ]
    p = run_cli("train", *args)
    assert p.stderr.count("fair replay is drawing almost uniformly") == 1
    assert "env.reward_scale" in p.stderr and "algo.differ.per_eps" in p.stderr
    result = json.loads((tmp_path / "flat" / "result.json").read_text())
    assert "fair replay is drawing almost uniformly" in result["fair_replay_warning"]
    recs = [r for r in read_jsonl(tmp_path / "flat" / "metrics.jsonl") if "fair_top10_share" in r]
    # ~150 individual experiences a step here: each step's share is noisy, their mean is not
    assert len(recs) > 5 and all(r["td_ind_over_eps"] < 1e-3 for r in recs)
    assert np.mean([r["fair_top10_share"] for r in recs]) == pytest.approx(0.10, abs=0.015)
    # -divide draws nothing, so it logs no share and never warns
    p = run_cli("train", "algo=qmix_divide", *args[1:-1], f"run_dir={tmp_path / 'divide'}")
    assert "fair replay" not in p.stderr
    recs = read_jsonl(tmp_path / "divide" / "metrics.jsonl")
    assert not any("fair_top10_share" in r for r in recs) and any("td_ind_over_eps" in r for r in recs)


def test_result_records_the_run_dir_relative_to_where_it_ran(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run_cli("train", "algo=qmix", *TINY_LBF, "t_max=200", f"run_dir={tmp_path / 'abs'}")
    assert json.loads((tmp_path / "abs" / "result.json").read_text())["run_dir"] == "abs"


def test_a_run_saved_before_reward_scale_resumes_at_scale_1_and_summaries_label_the_scales(tmp_path):
    """A SMAX run directory from before env.reward_scale (no such key) reads as scale 1: it resumes
    exactly as an uninterrupted scale-1 run, and a summary beside a scale-10 run labels both."""
    full, old, new = tmp_path / "full", tmp_path / "old", tmp_path / "new"
    args = ["algo=qmix", *TINY_SMAX, "t_max=1200", "checkpoint_interval=300", "seed=2"]
    run_cli("train", *args, "env.reward_scale=1", f"run_dir={full}")
    kill_after_first_checkpoint([*args, "env.reward_scale=1", f"run_dir={old}"], old)
    saved = OmegaConf.to_container(OmegaConf.load(old / "config.yaml"))
    del saved["env"]["reward_scale"]  # as differ 0.2 wrote it
    (old / "config.yaml").write_text(OmegaConf.to_yaml(saved))
    run_cli("train", f"resume={old}")
    a, b = metrics_pair(full, old)
    assert len(a) == len(b) > 3 and a == b
    assert OmegaConf.load(old / "config.yaml").env.reward_scale == 1
    run_cli("train", *args, f"run_dir={new}")  # today's default: scale 10
    out = tmp_path / "sum"
    p = run_cli("summary", str(old), str(new), f"out={out}", "metric=test_return_mean", "reps=100")
    assert "qmix (env.reward_scale=1.0)" in p.stdout and "qmix (env.reward_scale=10.0)" in p.stdout
    assert "smax 3m mixes reward scales (1, 10)" in p.stdout
    p = run_cli("plot", str(old), str(new), "metric=test_return_mean", f"out={tmp_path / 'fig'}")
    assert "mixes reward scales" in p.stderr
