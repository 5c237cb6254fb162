"""SMAX adapter on the real jaxmarl package: shapes, masks, deaths, determinism."""

import numpy as np
import pytest

from differ.envs.registry import UnknownEnvError, make_env, resolve_scenario, scenarios


@pytest.fixture(scope="module")
def env():
    e = make_env("smax", "2s3z", 3)
    yield e
    e.close()


def play(env, seeds, policy_seed=0, steps=200):
    rng = np.random.default_rng(policy_seed)
    o = env.reset(seeds)
    traj = [o]
    results = []
    done = np.zeros(env.num_envs, bool)
    for _ in range(steps):
        a = (rng.random(o.avail.shape) * o.avail).argmax(-1)
        r = env.step(a)
        o = r.next
        traj.append(o)
        results.append(r)
        done |= r.terminated | r.truncated
        if done.all():
            break
    return traj, results


def test_spec_and_shapes(env):
    s = env.spec
    assert (s.n_agents, s.obs_dim, s.state_dim, s.n_actions) == (5, 127, 120, 10)
    assert s.episode_limit == 101 and s.has_battles and s.has_deaths
    assert s.unit_type_names == ("stalker", "stalker", "zealot", "zealot", "zealot")
    o = env.reset([1, 2, 3])
    assert o.obs.shape == (3, 5, 127) and o.obs.dtype == np.float32
    assert o.state.shape == (3, 120) and o.avail.shape == (3, 5, 10) and o.avail.dtype == bool
    assert o.alive.all()
    # normalised state: positions, cooldowns and codes scaled to about [0, 1]
    assert 0 <= o.state.min() and o.state.max() <= 1.0


def test_masks_and_deaths(env):
    traj, results = play(env, [4, 5, 6])
    avail = np.stack([o.avail for o in traj])
    alive = np.stack([o.alive for o in traj])
    assert avail.any(-1).all(), "every agent has at least one available action"
    assert avail[..., 5:].any(), "attacks become available when enemies are in range"
    dead = ~alive
    assert dead.any(), "units die in a random-policy battle"
    # a dead unit can only stop (index 4): jaxmarl has no no-op
    dead_avail = avail[dead]
    assert dead_avail[:, 4].all() and not dead_avail[:, :4].any() and not dead_avail[:, 5:].any()
    # deaths are permanent within an episode until it ends
    ended = np.cumsum([r.terminated | r.truncated for r in results], axis=0) > 0
    for t in range(1, len(traj)):
        live = ~ended[t - 1]
        assert not (alive[t][live] & ~alive[t - 1][live]).any()


def test_terminated_and_battle_won_are_consistent(env):
    traj, results = play(env, [7, 8, 9], policy_seed=3)
    for e in range(3):
        ends = [t for t, r in enumerate(results) if r.terminated[e] or r.truncated[e]]
        t = ends[0]
        r, o = results[t], traj[t + 1]
        assert r.terminated[e] != r.truncated[e]
        if r.battle_won[e]:
            assert r.terminated[e] and o.alive[e].any()
        if r.truncated[e]:
            assert t + 1 == env.spec.episode_limit


def test_same_seed_same_episode(env):
    a, ra = play(env, [11, 12, 13], policy_seed=1)
    b, rb = play(env, [11, 12, 13], policy_seed=1)
    assert len(a) == len(b)
    for oa, ob in zip(a, b):
        np.testing.assert_array_equal(oa.obs, ob.obs)
        np.testing.assert_array_equal(oa.state, ob.state)
    np.testing.assert_array_equal([r.reward for r in ra], [r.reward for r in rb])
    c, _ = play(env, [14, 15, 16], policy_seed=1)
    assert not np.array_equal(a[0].obs, c[0].obs)


def test_time_limit_truncates():
    env = make_env("smax", "3m", 2, time_limit=5)
    env.reset([1, 2])
    for _ in range(5):
        r = env.step(np.full((2, 3), 4))  # everyone stops: nobody dies in 5 steps
    assert r.truncated.all() and not r.terminated.any()
    assert env.spec.episode_limit == 5


def test_scenarios_and_errors():
    assert {"3m", "2s3z", "3s5z", "3s5z_vs_3s6z", "27m_vs_30m"} <= set(scenarios("smax"))
    with pytest.raises(UnknownEnvError, match="valid choices: .*2s3z"):
        resolve_scenario("smax", "4m")
