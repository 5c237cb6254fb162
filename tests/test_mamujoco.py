"""env=mamujoco: gymnasium-robotics' multi-agent MuJoCo through the PettingZoo family, with
continuous per-agent action boxes."""

import numpy as np
import pytest

from differ.envs.base import ContinuousActions
from differ.envs.registry import UnknownEnvError, make_env, resolve_scenario

from .conftest import run_cli


def test_humanoid_spec_bounds_and_termination():
    with make_env("mamujoco", "Humanoid-9|8", 1, 1000, {}) as env:
        s = env.spec
        assert isinstance(s.actions, ContinuousActions) and s.actions.dims == (9, 8) and s.n_actions == 9
        assert (s.obs_dim, s.state_dim, s.episode_limit) == (236, 348, 1000)
        lo, hi = s.actions.bounds()
        np.testing.assert_allclose(hi[0], 0.4)
        np.testing.assert_allclose(hi[1, :8], 0.4)
        np.testing.assert_allclose(lo[1, :8], -0.4)
        assert hi[1, 8] == 0 and lo[1, 8] == 0  # agent 1 has 8 dimensions, padded to 9
        o = env.reset([3])
        np.testing.assert_array_equal(o.avail[0].sum(-1), [9, 8])
        raw = env.envs[0].core.env.state()  # the package's state, through env=mamujoco's symlog
        np.testing.assert_allclose(o.state[0], np.sign(raw) * np.log1p(np.abs(raw)), rtol=1e-5, atol=1e-6)
        assert s.obs_transform.symlog
        rng = np.random.default_rng(0)
        # random torques: the humanoid falls (unhealthy) long before 1000
        for t in range(1000):  # noqa: B007 (t is read after the loop)
            r = env.step(rng.uniform(lo, hi)[None].astype(np.float32))
            if r.terminated[0] or r.truncated[0]:
                break
    assert r.terminated[0] and not r.truncated[0] and t < 200


def test_swimmer_truncates_at_the_limit_and_rewards_count_once():
    with (
        make_env("mamujoco", "ManySegmentSwimmer-10x2", 1, 30, {}) as env,
        make_env("mamujoco", "ManySegmentSwimmer-10x2", 1, 30, {"team_reward": "sum"}) as env_sum,
    ):
        assert env.spec.n_agents == 10 and env.spec.actions.dims == (2,) * 10
        env.reset([1]), env_sum.reset([1])
        a = np.full((1, 10, 2), 0.3, np.float32)
        for _ in range(30):
            r, r_sum = env.step(a), env_sum.step(a)
            np.testing.assert_allclose(r.reward * 10, r_sum.reward, rtol=1e-5)  # identical per agent
    assert r.truncated[0] and not r.terminated[0]


def test_paper_observations_and_names():
    with make_env("mamujoco", "Humanoid-9|8", 1, 1000, {"paper_obs": True}) as env:
        assert env.spec.obs_transform.dims == (18, 16)  # 9 and 8 joints: qpos and qvel each
    assert resolve_scenario("mamujoco", "humanoid-9|8") == "Humanoid-9|8"
    with pytest.raises(UnknownEnvError, match="close choices: Humanoid-9|8"):
        resolve_scenario("mamujoco", "Humanoid-9|9")


def test_a_discrete_algorithm_is_refused_in_one_line(tmp_path):
    p = run_cli("train", "env=mamujoco", "algo=qmix", "t_max=100", f"run_dir={tmp_path / 'r'}", check=False)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1] == (
        "differ: error: algo=qmix acts in discrete action spaces, and env=mamujoco Humanoid-9|8 has continuous actions"
    )
