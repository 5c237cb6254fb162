"""env=pettingzoo on PettingZoo envs written here (tests/pz_envs.py), plug-in env families through
entry points, and MPE as the same family."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from differ.envs.registry import make_env

from .test_resume import metrics_pair, uninterrupted_and_resumed

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = "env.scenario=tests.pz_envs:Signals"
TINY = [
    "env=pettingzoo",
    SIGNALS,
    "test_episodes=2",
    "algo.batch_size=4",
    "algo.buffer_size=50",
    "test_interval=120",
    "log_interval=120",
    "checkpoint_interval=240",
]


def differ_cli(*args, pythonpath=(), check=True, timeout=300):
    """`python -m differ ...` from the repository root, with extra import paths."""
    env = dict(
        os.environ,
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join([*map(str, pythonpath), str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "differ", *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"differ {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc


def signals(num_envs=1, time_limit=None, **options):
    return make_env("pettingzoo", "tests.pz_envs:Signals", num_envs, time_limit, {"workers": 0, **options})


def random_play(env, seeds, steps, seed=0):
    rng = np.random.default_rng(seed)
    o = env.reset(seeds)
    trace = [(o, None)]
    for _ in range(steps):
        r = env.step((rng.random(o.avail.shape) * o.avail).argmax(-1))
        o = r.next
        trace.append((o, r))
    return trace


def test_conventions_spec_padding_masks_state_roles():
    with signals() as env:
        s = env.spec
        assert (s.n_agents, s.n_actions, s.obs_dim, s.episode_limit) == (3, 5, 6, 12)
        assert s.unit_type_names == ("scout", "scout", "carrier") and s.unit_type_ids == (0, 0, 1)
        assert s.state_dim == 16  # the env's own state(), not the 18 values of the observations
        assert s.obs_transform.dims == (4, 4, 6)
        o = env.reset([5])
        inner = env.envs[0].core.env
        np.testing.assert_array_equal(o.state[0], inner.state())
        for i, a in enumerate(inner.possible_agents):
            n = inner.action_space(a).n
            assert not o.avail[0, i, n:].any()  # a scout's 4th and 5th actions do not exist
            assert not o.avail[0, i, inner.blocked[a]] and o.avail[0, i, :n].sum() == n - 1  # masked
        assert (o.obs[0, :2, 4:] == 0).all()  # scouts' 4 values zero-padded to 6
        assert o.obs[0, 2, inner.targets["carrier_0"]] == 1.0  # the Dict's "observation"


def test_dead_agents_truncation_and_masks_respected():
    with signals(num_envs=2) as env:
        trace = random_play(env, [1, 2], 14)
        assert all(e.core.env.masked_taken == 0 for e in env.envs)
    dead_seen = False
    for (prev, _), (o, _r) in zip(trace, trace[1:]):
        died = prev.alive & ~o.alive
        dead_seen |= died.any()
        assert not (~prev.alive & o.alive).any()  # nobody comes back
        dead = ~o.alive
        assert (o.obs[dead] == 0).all()
        assert (o.avail[dead].sum(-1) == 1).all() and o.avail[dead][:, 0].all()  # only action 0
    assert dead_seen
    end = trace[12][1]  # the env truncates after 12 steps: bootstrap, not a true end
    assert end.truncated.all() and not end.terminated.any()
    assert not any(r.truncated.any() or r.terminated.any() for _, r in trace[1:12])


def test_all_dead_is_terminated_and_mean_reward():
    with signals(mortal_carrier=True, lives=1) as env:
        o = env.reset([3])
        inner = env.envs[0].core.env
        wrong = [
            next(k for k in range(inner.action_space(a).n) if k != inner.targets[a] and o.avail[0, i, k])
            for i, a in enumerate(inner.possible_agents)
        ]
        r = env.step(np.array([wrong]))
    assert r.terminated[0] and not r.truncated[0] and not r.next.alive.any()
    with signals(team_reward="mean") as env_mean, signals() as env_sum:
        a, b = random_play(env_mean, [4], 12), random_play(env_sum, [4], 12)
    for (_, ra), (_, rb) in zip(a[1:], b[1:]):
        np.testing.assert_allclose(ra.reward * 3, rb.reward)


def test_state_concat_option_factory_and_options():
    env = make_env("pettingzoo", "tests.pz_envs:signals_factory", 1, None, {"global_state": "concat", "max_cycles": 5})
    with env:
        assert env.spec.state_dim == 18 and env.spec.episode_limit == 5
        o = env.reset([0])
        np.testing.assert_array_equal(o.state[0], o.obs[0].reshape(-1))
    with make_env("pettingzoo", "tests.pz_envs:NoLimit", 1, 7, {}) as env:
        assert env.spec.episode_limit == 7


@pytest.mark.parametrize(
    "target,text",
    [
        ("tests.pz_envs:TurnBased", "AEC env"),
        (
            "tests.pz_envs:BoxActions",
            "acts in discrete action spaces, and env=pettingzoo tests.pz_envs:BoxActions has continuous",
        ),
        ("tests.pz_envs:MixedActions", "needs Discrete actions for every agent, or a 1-D Box for every agent"),
        ("tests.pz_envs:Newcomer", "agent medic_0 appeared mid-episode"),
        ("tests.pz_envs:NoLimit", "set env.time_limit"),
        ("tests.pz_envs:not_an_env", "not a PettingZoo ParallelEnv"),
        ("tests.no_such_module:Env", "cannot import 'tests.no_such_module'"),
        ("tests.pz_envs:Missing", "has no attribute 'Missing'"),
        ("pz_envs.Signals", "is not MODULE:ATTR"),
    ],
)
def test_an_env_that_breaks_a_convention_is_one_line(tmp_path, target, text):
    p = differ_cli(
        "train", "env=pettingzoo", f"env.scenario={target}", "t_max=100", f"run_dir={tmp_path / 'r'}", check=False
    )
    assert p.returncode != 0 and "Traceback" not in p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert last.startswith("differ: error:") and text in last and target.split(":")[0] in p.stderr


def test_train_evaluate_resume_exactly_and_sweep(tmp_path):
    common = [*TINY, "t_max=1200", "seed=2", "torch_threads=1"]
    full, killed = uninterrupted_and_resumed(common, tmp_path, differ_cli)
    a, b = metrics_pair(full, killed)
    assert len(a) == len(b) > 4 and a == b
    ev = json.loads(differ_cli("evaluate", str(full), "episodes=4").stdout)
    assert ev["episodes"] == 4 and 0 <= ev["return_mean"] <= 36 and ev["ep_length_mean"] <= 12
    out = tmp_path / "sweep"
    differ_cli("sweep", "seed=1,2", *TINY, "t_max=240", "algo=qmix,vdn_differ", f"out={out}", "workers=1")
    results = sorted(out.glob("*/result.json"))
    assert len(results) == 4 and all(json.loads(r.read_text())["t_env"] >= 240 for r in results)


def test_mpe_is_the_pettingzoo_family(tmp_path):
    """env=mpe is env=pettingzoo with the mpe2 module filled in: the same run, number for number."""
    common = [
        "t_max=400",
        "seed=1",
        "test_interval=200",
        "log_interval=200",
        "test_episodes=2",
        "algo.batch_size=4",
        "env.time_limit=25",
        "torch_threads=1",
        "algo=qmix_differ",
    ]
    differ_cli("train", "env=mpe", "env.scenario=simple_speaker_listener", *common, f"run_dir={tmp_path / 'a'}")
    differ_cli(
        "train",
        "env=pettingzoo",
        "env.scenario=mpe2.simple_speaker_listener_v4:parallel_env",
        "env.options.continuous_actions=false",
        "env.options.max_cycles=25",
        "env.options.global_state=concat",
        *common,
        f"run_dir={tmp_path / 'b'}",
    )
    a, b = metrics_pair(tmp_path / "a", tmp_path / "b")
    assert len(a) > 2 and a == b


PLUGIN = '''
"""A plug-in env family, as another package would ship one."""
from differ.envs import pettingzoo_family

DESCRIPTION = "Signals: a team of scouts and a carrier (test plug-in)"
PRESETS = {"signals": {"name": "signals", "scenario": "easy", "num_envs": 1},
           "signals_hard": {"name": "signals", "scenario": "hard", "num_envs": 1, "time_limit": 8}}
LIVES = {"easy": 3, "hard": 1}


def scenarios(family):
    return list(LIVES)


def resolve(family, scenario):
    if scenario not in LIVES:
        from differ.envs.registry import UnknownEnvError
        raise UnknownEnvError(f"unknown signals scenario '{scenario}'; valid choices: easy, hard")
    return scenario


def make(family, scenario, num_envs, time_limit=None, options=None):
    options = {"lives": LIVES[scenario], **(options or {})}
    return pettingzoo_family.make("pettingzoo", "tests.pz_envs:Signals", num_envs, time_limit, options)
'''


def test_a_plugin_family_from_an_entry_point(tmp_path):
    site = tmp_path / "site"
    dist = site / "signals_plugin-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: signals-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[differ.envs]\nsignals = signals_family\n")
    (site / "signals_family.py").write_text(PLUGIN)
    listing = differ_cli("envs", pythonpath=[site]).stdout
    assert "signals: Signals: a team of scouts and a carrier (test plug-in)" in listing
    assert "2 scenarios: easy, hard" in listing
    run = tmp_path / "run"
    differ_cli(
        "train",
        "env=signals_hard",
        "t_max=200",
        "test_interval=100",
        "log_interval=100",
        "test_episodes=2",
        "algo.batch_size=4",
        f"run_dir={run}",
        pythonpath=[site],
    )
    cfg = (run / "config.yaml").read_text()
    assert "name: signals" in cfg and "scenario: hard" in cfg and "time_limit: 8" in cfg
    ev = json.loads(differ_cli("evaluate", str(run), "episodes=2", pythonpath=[site]).stdout)
    assert ev["ep_length_mean"] <= 8
    bad = differ_cli("train", "env=signals", "env.scenario=medium", "t_max=100", pythonpath=[site], check=False)
    assert bad.returncode != 0 and "unknown signals scenario 'medium'" in bad.stderr.strip().splitlines()[-1]
    gone = differ_cli("evaluate", str(run), check=False)  # the plug-in is not installed here
    assert gone.returncode != 0 and "env.name=signals: unknown environment" in gone.stderr
