"""The gym-style families (lbf, rware) and MPE (through the PettingZoo family) against the real packages."""

import numpy as np
import pytest

from differ.envs.registry import UnknownEnvError, make_env, resolve_scenario, scenarios

CASES = [
    ("lbf", "Foraging-8x8-2p-3f-v3"),
    ("rware", "rware-tiny-2ag-v2"),
    ("mpe", "simple_spread"),
]
IDS = [c[0] for c in CASES]


def make(family, scenario, num_envs=1, time_limit=None, **options):
    return make_env(family, scenario, num_envs, time_limit, options)


def pick(avail, u):
    """A random available action per agent, a pure function of the mask and the noise `u`."""
    return np.argmax(u * avail + avail, axis=-1)  # +avail: an available action always wins


def rollout(env, seeds, steps, noise_seed=0, extra=0):
    """Run `steps` steps (+ `extra` after every copy has ended); return everything observed."""
    u = np.random.default_rng(noise_seed).random((steps + extra, env.spec.n_agents, env.spec.n_actions))
    first = env.reset(seeds)
    trace = [(first.obs, first.state, first.avail, None, None, None)]
    avail = first.avail
    for t in range(steps + extra):
        r = env.step(pick(avail, u[t]))
        avail = r.next.avail
        trace.append((r.next.obs, r.next.state, r.next.avail, r.reward, r.terminated, r.truncated))
    return trace


def same(a, b):
    for x, y in zip(a, b, strict=True):
        for p, q in zip(x, y, strict=True):
            if p is None:
                assert q is None
            else:
                np.testing.assert_array_equal(p, q)


@pytest.mark.parametrize("family,scenario", CASES, ids=IDS)
def test_spec_shapes_and_dtypes(family, scenario):
    with make(family, scenario, num_envs=2, workers=0) as env:
        s = env.spec
        assert s.state_dim == s.n_agents * s.obs_dim
        assert len(s.unit_type_ids) == len(s.unit_type_names) == s.n_agents
        assert s.episode_limit == {"lbf": 50, "rware": 500, "mpe": 25}[family]
        o = env.reset([0, 1])
        e, n, a = 2, s.n_agents, s.n_actions
        assert o.obs.shape == (e, n, s.obs_dim) and o.obs.dtype == np.float32
        assert o.state.shape == (e, s.state_dim) and o.state.dtype == np.float32
        assert o.avail.shape == (e, n, a) and o.avail.dtype == bool
        assert o.alive.shape == (e, n) and o.alive.dtype == bool and o.alive.all()
        np.testing.assert_array_equal(o.state, o.obs.reshape(e, -1))
        r = env.step(np.zeros((e, n), int))
        assert r.reward.shape == (e,) and r.reward.dtype == np.float32
        assert r.terminated.dtype == bool and r.truncated.dtype == bool
        assert r.next.obs.shape == o.obs.shape


@pytest.mark.parametrize("family,scenario", CASES, ids=IDS)
def test_avail_has_an_action_per_agent(family, scenario):
    with make(family, scenario, time_limit=40) as env:
        masks = np.stack([step[2] for step in rollout(env, [5], 40)])
    assert masks.any(-1).all()
    if family == "lbf":
        assert not masks.all()  # walls and food block moves, LOAD needs adjacent food
        assert len({m.tobytes() for m in masks}) > 1
    else:
        assert masks.all()


@pytest.mark.parametrize("family,scenario", CASES, ids=IDS)
def test_episode_is_a_function_of_its_seed(family, scenario):
    with make(family, scenario, time_limit=30) as env:
        a = rollout(env, [7], 30)
        b = rollout(env, [7], 30)  # same instance, re-seeded
    with make(family, scenario, time_limit=30) as env:
        c = rollout(env, [7], 30)  # fresh instance
    same(a, b)
    same(a, c)


@pytest.mark.parametrize("family,scenario", CASES, ids=IDS)
def test_different_seeds_give_different_starts(family, scenario):
    with make(family, scenario) as env:
        first = [env.reset([seed]).obs for seed in range(4)]
    assert len({o.tobytes() for o in first}) == 4


@pytest.mark.parametrize("family,scenario", CASES, ids=IDS)
def test_time_limit_truncates_and_finished_copies_are_safe(family, scenario):
    with make(family, scenario, time_limit=5) as env:
        assert env.spec.episode_limit == 5
        env.reset([3])
        noop = np.zeros((1, env.spec.n_agents), int)  # index 0 is "do nothing" in all three
        for _ in range(4):
            r = env.step(noop)
            assert not r.terminated[0] and not r.truncated[0]
        last = env.step(noop)
        assert last.truncated[0] and not last.terminated[0]
        for _ in range(3):  # the runner may keep stepping a finished copy
            again = env.step(noop)
            np.testing.assert_array_equal(again.next.obs, last.next.obs)
            np.testing.assert_array_equal(again.next.avail, last.next.avail)
            assert again.reward[0] == 0.0 and again.truncated[0] and not again.terminated[0]
        assert env.envs[0]._t == 5  # the package env was not stepped again
        env.reset([4])
        assert not env.step(noop).truncated[0]


def test_lbf_collecting_all_food_terminates():
    # food level 1: either agent can load it alone, so random play clears the field quickly
    with make("lbf", "Foraging-5x5-2p-1f", time_limit=200, max_food_level=1) as env:
        trace = rollout(env, [0], 200)
    ends = [i for i, step in enumerate(trace[1:]) if step[4][0] or step[5][0]]
    assert ends, "no episode end in 200 steps"
    end = trace[1 + ends[0]]
    assert end[4][0] and not end[5][0] and end[3][0] > 0


@pytest.mark.parametrize("family,scenario", CASES, ids=IDS)
def test_workers_match_in_process(family, scenario):
    limit = 12
    with make(family, scenario, num_envs=2, time_limit=limit) as env:
        assert type(env.inner).__name__ == "WorkerVecEnv"
        both = rollout(env, [11, 12], limit, extra=2)
    for copy, seed in enumerate([11, 12]):
        with make(family, scenario, time_limit=limit) as env:
            alone = rollout(env, [seed], limit, extra=2)
        sliced = [tuple(None if x is None else x[copy : copy + 1] for x in step) for step in both]
        same(sliced, alone)
    assert both[limit][5].all() and not both[limit][4].any()


def test_mpe_roles_and_padding():
    with make("mpe", "simple_speaker_listener") as env:
        s = env.spec
        assert s.unit_type_names == ("speaker", "listener") and s.unit_type_ids == (0, 1)
        o = env.reset([0])
    assert (s.n_actions, s.obs_dim) == (5, 11)
    np.testing.assert_array_equal(o.avail[0].sum(-1), [3, 5])  # speaker: 3 messages only
    assert (o.obs[0, 0, 3:] == 0).all()  # speaker's 3-value observation is zero-padded


def test_scenario_names():
    assert "Foraging-8x8-2p-3f-v3" in scenarios("lbf")
    assert "rware-tiny-2ag-v2" in scenarios("rware")
    assert "simple_spread" in scenarios("mpe")
    for alias in ["Foraging-8x8-2p-3f-v3", "Foraging-8x8-2p-3f", "8x8-2p-3f"]:
        assert resolve_scenario("lbf", alias) == "Foraging-8x8-2p-3f-v3"
    assert resolve_scenario("rware", "rware-tiny-2ag") == "rware-tiny-2ag-v2"
    assert resolve_scenario("mpe", "simple_spread_v3") == "simple_spread"
    assert resolve_scenario("lbf", "8x8-2p-3f") == "Foraging-8x8-2p-3f-v3"


@pytest.mark.parametrize(
    "family,bad,hint",
    [
        ("lbf", "Foraging-8x8-2p-3g", "Foraging-8x8-2p-3f-v3"),
        ("rware", "rware-tiny-2agg-v2", "rware-tiny-2ag-v2"),
        ("mpe", "simple_sprad", "simple_spread"),
    ],
)
def test_unknown_scenario_message(family, bad, hint):
    with pytest.raises(UnknownEnvError) as err:
        resolve_scenario(family, bad)
    msg = str(err.value)
    assert "\n" not in msg and bad in msg and hint in msg and "differ envs" in msg


@pytest.mark.parametrize("family,scenario,seeds", [(*CASES[0], 300), (*CASES[1], 60), (*CASES[2], 60)], ids=IDS)
def test_an_episode_is_a_pure_function_of_its_seed(family, scenario, seeds):
    """An env that played other episodes before gives the same episode for a seed as a fresh one:
    no state leaks from one episode into the next (lbforaging's reset avoids the previous
    episode's final player positions unless the adapter clears them: 16 of 400 seeds differed)."""
    reused = make(family, scenario, time_limit=12)
    try:
        for seed in range(seeds):
            with make(family, scenario, time_limit=12) as fresh:
                same(rollout(reused, [seed], 12, noise_seed=seed), rollout(fresh, [seed], 12, noise_seed=seed))
    finally:
        reused.close()
