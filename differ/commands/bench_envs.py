"""`differ bench only=comix` and `only=grf`: the figures of the env families with a cost of their
own, MaMuJoCo with COMIX's CEM controller and Google Research Football (see bench.py's
docstring for what each section measures)."""

from __future__ import annotations

import statistics
import time

import numpy as np

from ..acting.runner import Runner
from ..assemble import assemble, make_envs
from ..config import build_config
from ..envs.registry import make_env
from ..replay.episode_buffer import EpisodeBuffer
from .bench import rollout_steps_per_s, train_steps_per_s

MAMUJOCO = ("Humanoid-9|8", "ManySegmentSwimmer-10x2")


class _RandomBox:
    """A controller drawing uniform actions inside each agent's box: the env (and runner) alone."""

    def __init__(self, low: np.ndarray, high: np.ndarray):
        self.low, self.high = low, high

    def start(self, num_envs: int) -> None:
        pass

    def act(self, obs, avail, epsilon, rng, greedy=False):
        return rng.uniform(self.low, self.high, (obs.shape[0], *self.low.shape)).astype(np.float32)


def _comix_cfg(algo: str, scenario: str, num_envs: int = 1, workers: int | None = None):
    over = {
        "algo": algo,
        "env": "mamujoco",
        "env.scenario": scenario,
        "env.num_envs": str(num_envs),
        "tensorboard": "false",
        "progress": "false",
    }
    if workers is not None:
        over["env.options.workers"] = str(workers)
    return build_config(over)


def comix_acting(scenario: str, num_envs: int, workers: int | None, min_steps: int) -> dict:
    """Env steps/s with random actions and with the COMIX controller, and CEM's share of the latter."""
    cfg = _comix_cfg("comix", scenario, num_envs, workers)
    env, _ = make_envs(cfg)
    low, high = env.spec.actions.bounds()
    controller = assemble(cfg, env.spec).controller()
    rng = np.random.default_rng(0)
    out = {}
    try:
        for name, ctrl in (("random", _RandomBox(low, high)), ("comix", controller)):
            runner = Runner(env, ctrl)
            runner.run(list(range(num_envs)), 0.0, rng)  # warm-up (worker start, first allocations)
            cem_before = getattr(ctrl, "cem_seconds", 0.0)
            steps, seed, t0 = 0, 1000, time.perf_counter()
            while steps < min_steps:
                eps = runner.run(list(range(seed, seed + num_envs)), 0.0, rng)
                steps, seed = steps + sum(e.length for e in eps), seed + num_envs
            wall = time.perf_counter() - t0
            out[f"{name}_steps_per_s"] = round(steps / wall)
            if name == "comix":
                out["cem_share"] = round((ctrl.cem_seconds - cem_before) / wall, 3)
    finally:
        env.close()
    return out


def comix_learner_step_s(scenario: str, reps: int) -> dict:
    """Median seconds of one training step of COMIX and COMIX-DIFFER on 32 episodes a random policy
    collected (Swimmer: always 1000 steps; Humanoid: short, it falls), alternating."""
    cfg = _comix_cfg("comix", scenario)
    env, _ = make_envs(cfg)
    low, high = env.spec.actions.bounds()
    rng = np.random.default_rng(0)
    eps = []
    runner = Runner(env, _RandomBox(low, high))
    for s in range(32):
        eps += runner.run([s], 0.0, rng)
    env.close()
    buf = EpisodeBuffer(env.spec, 32, cfg.algo.obs_dtype)
    for e in eps:
        buf.add_episode(e)
    learners = {a: assemble(_comix_cfg(a, scenario), env.spec) for a in ("comix", "comix_differ")}
    times: dict[str, list[float]] = {a: [] for a in learners}
    for i in range(reps + 1):
        for a, learner in learners.items():
            t0 = time.perf_counter()
            learner.train(buf.sample(32, rng))
            if i >= 1:
                times[a].append(time.perf_counter() - t0)
    return {
        "episode_length_mean": round(float(np.mean([e.length for e in eps])), 1),
        **{a: round(statistics.median(ts), 2) for a, ts in times.items()},
    }


def comix_section(quick: bool) -> dict:
    out: dict = {}
    for scenario in MAMUJOCO:
        swimmer = scenario.startswith("ManySegment")
        acting_steps = 2000 if quick else (10_000 if swimmer else 5000)
        r: dict = {"acting": {"E1": comix_acting(scenario, 1, None, acting_steps)}}
        if not quick:
            r["acting"]["E4_in_process"] = comix_acting(scenario, 4, 0, acting_steps)
            r["acting"]["E4_workers"] = comix_acting(scenario, 4, None, acting_steps)
        r["learner_step_s"] = comix_learner_step_s(scenario, 1 if quick else 3)
        if not quick:
            # warm-up fills the buffer past one batch (32 episodes), then the paper's protocol
            w, m = (34_000, 6_000) if swimmer else (5_000, 10_000)
            r["train_steps_per_s"] = {
                a: round(
                    train_steps_per_s(
                        {"algo": a, "env": "mamujoco", "env.scenario": scenario, "torch_threads": "2"}, w, m
                    )
                )
                for a in ("comix", "comix_differ")
            }
        out[scenario] = r
    return out


# end-to-end QMIX with each speed option alone and all together (torch threads set explicitly:
# overlap runs two busy threads, one torch thread each)
GRF = ("academy_3_vs_1_with_keeper", "academy_counterattack_hard")


def random_steps_per_s(env_name: str, scenario: str, num_envs: int, min_steps: int, options=None) -> float:
    """Env steps/s (summed over copies) under uniform random discrete actions, whole episodes."""
    with make_env(env_name, scenario, num_envs, None, options or {}) as env:
        n, a = env.spec.n_agents, env.spec.n_actions
        rng = np.random.default_rng(0)
        env.reset(list(range(num_envs)))  # starts the workers
        steps, seed, t0 = 0, num_envs, time.perf_counter()
        while steps < min_steps:
            env.reset(list(range(seed, seed + num_envs)))
            seed += num_envs
            done = np.zeros(num_envs, bool)
            while not done.all():
                r = env.step(rng.integers(0, a, (num_envs, n)))
                steps += int((~done).sum())
                done |= r.terminated | r.truncated
        return steps / (time.perf_counter() - t0)


def grf_section(quick: bool) -> dict:
    out: dict = {}
    for scenario in GRF:
        steps = 600 if quick else 6000
        r: dict = {"random_steps_per_s": {"E1": round(random_steps_per_s("grf", scenario, 1, steps))}}
        if not quick:
            for e in (2, 4):
                r["random_steps_per_s"][f"E{e}_workers"] = round(random_steps_per_s("grf", scenario, e, steps))
        r["rollout_steps_per_s_E1"] = round(rollout_steps_per_s("grf", scenario, 1, 5 if quick else 60))
        if not quick:  # warm-up fills the buffer past one batch of 32 episodes
            r["train_steps_per_s"] = {
                a: round(
                    train_steps_per_s(
                        {"algo": a, "env": "grf", "env.scenario": scenario, "torch_threads": "2"}, 4000, 10_000
                    )
                )
                for a in ("qmix", "qmix_differ")
            }
        out[scenario] = r
    return out
