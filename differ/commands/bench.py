"""`differ bench`: speed and memory figures, printed as JSON.

- learner_step_ms: one training step of QMIX, QMIX with bfloat16 agent passes, with the fused GRU
  kernel, with both, QMIX-DIFFER, QPLEX and
  QPLEX-DIFFER (batch 32, whole episodes of T steps) at the shapes of 2s3z (T=40), 3s5z_vs_3s6z (T=60)
  and 27m_vs_30m (T=80), beside a plain PyTorch QMIX step (differ/commands/bench_reference.py) on the same
  batches; median of repeated steps, sampling from the buffer included; and their ratios.
- rollout_steps_per_s: env steps/s of ε-greedy collection alone (agent network included).
- train_steps_per_s: end-to-end `differ train` env steps/s under the paper's protocol (one
  training step of batch 32 per collected episode), measured after a warm-up that fills the
  buffer and compiles the env.
- buffer_gb: a 5000-episode buffer: exact bytes per step times (a) the episode limit (the worst
  case, what start-up checks) and (b) the mean episode length of a random policy, measured.
- comix (only with `only=comix`, MaMuJoCo Humanoid-9|8 and ManySegmentSwimmer-10x2): env steps/s
  with uniform random actions; acting steps/s with COMIX's CEM controller (training noise on) and
  the share of that time spent in CEM, for one copy, copies in this process and copies as worker
  processes; COMIX's and COMIX-DIFFER's training step (batch 32 of the collected episodes); and
  end-to-end `differ train` env steps/s.
- speed (only with `only=speed`): end-to-end QMIX env steps/s on SMAX 2s3z, 3s5z_vs_3s6z and LBF
  with each speed option (skip_empty_obs, bfloat16, fused_gru, overlap) alone, in the pairs that
  pay, and all together.
- parallel (only with `only=parallel`): the summed env steps/s of 2 runs side by side as processes
  (one torch thread each) against one run with 2 threads: what several seeds at once can gain.
- profile (only with `only=profile`): where a whole QMIX-DIFFER run's time goes on SMAX 2s3z and
  3s5z_vs_3s6z (2 torch threads), default settings and the speed options: env steps/s and, per
  phase of the run loop (differ/run/timing.py), ms per env step and share, tests included.
- busy (only with `only=busy`): SMAX 3m QMIX end to end alone and beside one busy program (a
  Python loop), with the default (1 thread), 2 threads, and torch_threads=0 (the cores idle at
  the start): what a laptop with other work open, or a second run, costs.
- grf (only with `only=grf`, both Google Research Football scenarios): env steps/s with uniform random
  actions for one copy in this process and for 2 and 4 copies as worker processes; ε-greedy
  collection through the agent network (one copy); end-to-end `differ train` env steps/s of QMIX
  and QMIX-DIFFER.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..acting.runner import Runner
from ..assemble import assemble
from ..config import ConfigError, build_config, flag_option
from ..envs.base import DiscreteActions, EnvSpec
from ..envs.registry import make_env
from ..replay.episode_buffer import EpisodeBuffer, bytes_per_step, worst_case_bytes
from ..run.threads import kept_thread_count
from ..run.timing import PhaseClock
from ..run.trainer import Trainer
from .bench_reference import PlainQMIXStep

SHAPES = {  # scenario: (n_agents, obs, state, actions, T)
    "2s3z": (5, 127, 120, 10, 40),
    "3s5z_vs_3s6z": (8, 218, 204, 14, 60),
    "27m_vs_30m": (27, 738, 684, 35, 80),
}


def synthetic_batches(scenario: str, capacity: int, episodes: int) -> tuple[EnvSpec, EpisodeBuffer]:
    """The spec of a SHAPES scenario and a buffer of `episodes` full-length random episodes (seed 0)."""
    n, obs, state, A, T = SHAPES[scenario]
    spec = EnvSpec(n, DiscreteActions(A), obs, state, T, (0,) * n, ("unit",) * n)
    buf = EpisodeBuffer(spec, capacity, "float16")
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        buf.add(
            obs=rng.random((T + 1, n, obs)),
            state=rng.random((T + 1, state)),
            avail=rng.random((T + 1, n, A)) > 0.2,
            alive=np.ones((T + 1, n), bool),
            actions=rng.integers(0, A, (T, n)),
            reward=rng.random(T),
            terminated=True,
        )
    return spec, buf


def learner_step_ms(scenario: str, variants=("qmix", "qmix_differ"), reps: int = 10) -> dict[str, float]:
    """Median ms of one training step per variant; the variants' steps alternate, so that a slow
    spell of the machine hits them alike and their ratios stay fair. A variant is an algorithm
    preset, or NAME:KEY=VALUE,... for a preset with overrides (e.g. qmix:algo.agent_precision=bfloat16),
    or plain_qmix, the yardstick (differ/commands/bench_reference.py)."""
    spec, buf = synthetic_batches(scenario, 64, 32)
    learners = {}
    for v in variants:
        if v == "plain_qmix":
            learners[v] = PlainQMIXStep(spec.n_agents, spec.obs_dim, spec.state_dim, spec.n_actions)
            continue
        algo, _, extra = v.partition(":")
        overrides = dict(kv.split("=", 1) for kv in extra.split(",") if kv)
        learners[v] = assemble(build_config({"algo": algo, **overrides}), spec)
    times: dict[str, list[float]] = {v: [] for v in learners}
    for i in range(reps + 2):
        for v, learner in learners.items():
            draw = np.random.default_rng(i)  # every variant gets the same episodes at step i
            t0 = time.perf_counter()
            learner.train(buf.sample(32, draw, getattr(learner, "batch_obs_dtype", torch.float32)))
            if i >= 2:  # the first steps allocate
                times[v].append(time.perf_counter() - t0)
    return {v: 1000 * statistics.median(ts) for v, ts in times.items()}


def rollout_steps_per_s(env_name: str, scenario: str, num_envs: int, batches: int = 10) -> float:
    env = make_env(env_name, scenario, num_envs)
    spec = env.spec
    cfg = build_config({"env": env_name})
    runner = Runner(env, assemble(cfg, spec).controller())
    rng = np.random.default_rng(0)
    runner.run(list(range(num_envs)), 1.0, rng)  # compile
    steps, t0 = 0, time.perf_counter()
    for b in range(batches):
        eps = runner.run(list(range((b + 1) * num_envs, (b + 2) * num_envs)), 1.0, rng)
        steps += sum(e.length for e in eps)
    env.close()
    return steps / (time.perf_counter() - t0)


@kept_thread_count()
def train_steps_per_s(overrides: dict, warmup: int, measure: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        cfg = build_config(
            {
                **overrides,
                "t_max": str(warmup),
                "tensorboard": "false",
                "progress": "false",
                "test_interval": str(10**9),
                "checkpoint_interval": "0",
            }
        )
        trainer = Trainer(cfg, Path(d))
        trainer.start_new()
        trainer.train()
        start, saving = trainer.c.t_env, trainer.clock.seconds["checkpoint"]
        cfg.t_max = start + measure
        t0 = time.perf_counter()
        trainer.train()
        # the benchmark measures training, not disk: the final checkpoint's time is left out
        wall = time.perf_counter() - t0 - (trainer.clock.seconds["checkpoint"] - saving)
        return (trainer.c.t_env - start) / wall


def buffer_gb(scenario: str, episodes: int = 16) -> dict:
    env = make_env("smax", scenario, episodes)
    cfg = build_config({})
    runner = Runner(env, assemble(cfg, env.spec).controller())
    eps = runner.run(list(range(episodes)), 1.0, np.random.default_rng(0))
    mean_len = float(np.mean([e.length for e in eps]))
    buf = EpisodeBuffer(env.spec, episodes, "float16")
    for e in eps:
        buf.add_episode(e)
    per_step = bytes_per_step(env.spec, "float16")
    return {
        "bytes_per_step": per_step,
        "measured_bytes_per_episode": buf.nbytes() / episodes,
        "random_policy_mean_length": mean_len,
        "gb_5000_at_random_policy_lengths": 5000 * buf.nbytes() / episodes / 1e9,
        "gb_5000_worst_case": worst_case_bytes(env.spec, "float16", 5000) / 1e9,
    }


BF16 = "qmix:algo.agent_precision=bfloat16"
FUSED = "qmix:algo.fused_gru=true"
FUSED_BF16 = "qmix:algo.fused_gru=true,algo.agent_precision=bfloat16"
LEARNER_VARIANTS = ("plain_qmix", "qmix", BF16, FUSED, FUSED_BF16, "qmix_differ", "qplex", "qplex_differ")
SECTIONS = ("learner", "rollout", "train", "buffer", "comix", "grf", "speed", "parallel", "profile", "busy")


SPEED_VARIANTS = {
    "default": {"torch_threads": "2"},
    "skip_empty_obs": {"torch_threads": "2", "algo.skip_empty_obs": "true"},
    "bfloat16": {"torch_threads": "2", "algo.agent_precision": "bfloat16"},
    "fused_gru": {"torch_threads": "2", "algo.fused_gru": "true"},
    "fused_gru_bfloat16": {"torch_threads": "2", "algo.fused_gru": "true", "algo.agent_precision": "bfloat16"},
    "overlap": {"torch_threads": "1", "overlap": "true"},
    "overlap_fused_gru": {"torch_threads": "1", "overlap": "true", "algo.fused_gru": "true"},
    "all": {
        "torch_threads": "1",
        "overlap": "true",
        "algo.skip_empty_obs": "true",
        "algo.agent_precision": "bfloat16",
        "algo.fused_gru": "true",
    },
}
SPEED_RUNS = {
    "smax_2s3z": {"env.scenario": "2s3z"},
    "smax_3s5z_vs_3s6z": {"env.scenario": "3s5z_vs_3s6z"},
    "lbf_8x8-2p-3f_E1": {"env": "lbf"},
}


def speed_section(quick: bool) -> dict:
    w, m = (2000, 2000) if quick else (10_000, 20_000)
    return {
        run: {name: round(train_steps_per_s({**base, **opts}, w, m)) for name, opts in SPEED_VARIANTS.items()}
        for run, base in SPEED_RUNS.items()
    }


def parallel_section(quick: bool) -> dict:
    """What several seeds at once can gain on this machine: the summed env steps/s of 2 runs of
    QMIX side by side as processes (one torch thread each), against one run with all threads."""
    import multiprocessing as mp

    w, m = (2000, 2000) if quick else (10_000, 20_000)
    out = {}
    for run, base in SPEED_RUNS.items():
        if quick and run != "lbf_8x8-2p-3f_E1":
            continue
        jobs = [({**base, "torch_threads": "1", "seed": str(seed)}, w, m) for seed in (1, 2)]
        with mp.get_context("spawn").Pool(len(jobs)) as pool:
            summed = sum(pool.starmap(train_steps_per_s, jobs))
        out[run] = {
            "one_process": round(train_steps_per_s({**base, "torch_threads": "2"}, w, m)),
            "2_processes_summed": round(summed),
        }
    return out


@kept_thread_count()
def profile_run(overrides: dict, warmup: int, measure: int) -> dict:
    """A whole `differ train` run's time split (differ/run/timing.py) over `measure` env steps after a
    warm-up of `warmup` (the buffer filled, the env compiled), with the run's own test and log
    schedule (tests included): env steps/s and, per phase, ms per env step and share."""
    with tempfile.TemporaryDirectory() as d:
        cfg = build_config({**overrides, "t_max": str(warmup), "tensorboard": "false", "progress": "false"})
        trainer = Trainer(cfg, Path(d))
        trainer.start_new()
        trainer.train()
        before, t_start = dict(trainer.clock.seconds), trainer.c.t_env
        cfg.t_max = t_start + measure
        t0 = time.perf_counter()
        trainer.train()
        wall, steps = time.perf_counter() - t0, trainer.c.t_env - t_start
        split = PhaseClock({k: v - before.get(k, 0.0) for k, v in trainer.clock.seconds.items()}).split(steps, wall)
    return {
        "steps_per_s": round(steps / wall, 1),
        **{k: {"ms_per_env_step": v["ms_per_env_step"], "share": v["share"]} for k, v in split.items()},
    }


def profile_section(quick: bool) -> dict:
    w, m = (2000, 3000) if quick else (10_000, 30_000)
    out = {}
    for scenario in ("2s3z", "3s5z_vs_3s6z"):
        for name, extra in (
            ("default", {}),
            ("fused_gru_bf16", {"algo.fused_gru": "true", "algo.agent_precision": "bfloat16"}),
            ("fused_gru_skip_padding", {"algo.fused_gru": "true", "algo.skip_padding": "true"}),
            (
                "fused_gru_bf16_skip_padding",
                {"algo.fused_gru": "true", "algo.agent_precision": "bfloat16", "algo.skip_padding": "true"},
            ),
        ):
            out[f"qmix_differ_{scenario}_{name}"] = profile_run(
                {"algo": "qmix_differ", "env.scenario": scenario, "torch_threads": "2", **extra}, w, m
            )
    return out


def busy_section(quick: bool) -> dict:
    """A run beside one busy program (a Python loop on one core): SMAX 3m QMIX env steps/s alone
    and beside it, with the default (1 thread), 2 threads and torch_threads=0 (one per core idle
    when the run starts). The goal: beside it, at least 0.45 of the alone speed, and never slower
    than torch_threads=1."""
    import subprocess
    import sys

    w, m = (2000, 3000) if quick else (10_000, 20_000)
    out: dict = {}
    for name, threads in (("default_1", "1"), ("threads_2", "2"), ("idle_cores_at_start", "0")):
        over = {"env.scenario": "3m", "torch_threads": threads}
        alone = train_steps_per_s(over, w, m)
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            beside = train_steps_per_s(over, w, m)
        finally:
            busy.kill()
            busy.wait()
        out[name] = {"alone": round(alone), "beside_busy": round(beside), "ratio": round(beside / alone, 3)}
    return out


def main(opts: dict | None = None) -> dict:
    opts = dict(opts or {})
    quick = flag_option(opts, "quick")
    opts.pop("quick", None)
    only = opts.pop("only", None)
    if opts:
        raise ConfigError(f"unknown bench option(s) {', '.join(opts)}; valid: quick, only")
    torch.set_num_threads(torch.get_num_threads())
    out: dict = {"torch_threads": torch.get_num_threads(), "quick": quick}
    sections = only.split(",") if only else ["learner", "rollout", "train", "buffer"]
    unknown = [x for x in sections if x not in SECTIONS]
    if unknown:
        raise ConfigError(f"only={only}: unknown section {unknown[0]!r}; valid: {', '.join(SECTIONS)}")
    if "learner" in sections:
        shapes = ["2s3z"] if quick else list(SHAPES)
        out["learner_step_ms"] = {}
        for s in shapes:
            ms = learner_step_ms(s, LEARNER_VARIANTS, reps=3 if quick else (10 if s == "27m_vs_30m" else 30))
            out["learner_step_ms"][s] = {
                **{v: round(x, 1) for v, x in ms.items()},
                # > 1: faster than the plain PyTorch step on the same batches
                "plain_over_qmix": round(ms["plain_qmix"] / ms["qmix"], 3),
                "plain_over_qmix_bf16": round(ms["plain_qmix"] / ms[BF16], 3),
                "plain_over_qmix_fused_gru": round(ms["plain_qmix"] / ms[FUSED], 3),
                "plain_over_qmix_fused_gru_bf16": round(ms["plain_qmix"] / ms[FUSED_BF16], 3),
                "differ_over_qmix": round(ms["qmix_differ"] / ms["qmix"], 3),
                "differ_over_qplex": round(ms["qplex_differ"] / ms["qplex"], 3),
            }
    if "rollout" in sections:
        out["rollout_steps_per_s"] = {
            "smax_2s3z_E8": round(rollout_steps_per_s("smax", "2s3z", 8, 2 if quick else 10)),
            "lbf_8x8-2p-3f_E1": round(rollout_steps_per_s("lbf", "Foraging-8x8-2p-3f-v3", 1, 20 if quick else 200)),
        }
    if "train" in sections:
        w, m = (2000, 2000) if quick else (10_000, 20_000)
        out["train_steps_per_s"] = {
            "qmix_smax_2s3z": round(train_steps_per_s({"env.scenario": "2s3z", "torch_threads": "2"}, w, m)),
            "qmix_smax_3s5z_vs_3s6z": round(
                train_steps_per_s({"env.scenario": "3s5z_vs_3s6z", "torch_threads": "2"}, w, m)
            ),
            "qmix_lbf_8x8-2p-3f_E1": round(train_steps_per_s({"env": "lbf", "torch_threads": "2"}, w, m)),
        }
    if "speed" in sections:
        out["speed_options_steps_per_s"] = speed_section(quick)
    if "parallel" in sections:
        out["parallel_steps_per_s"] = parallel_section(quick)
    if "buffer" in sections:
        out["buffer_gb"] = {s: buffer_gb(s, 4 if quick else 16) for s in ("3s5z_vs_3s6z", "27m_vs_30m")}
    if "comix" in sections:
        from .bench_envs import comix_section

        out["comix"] = comix_section(quick)
    if "grf" in sections:
        from .bench_envs import grf_section

        out["grf"] = grf_section(quick)
    if "busy" in sections:
        out["busy"] = busy_section(quick)
    if "profile" in sections:
        out["profile"] = profile_section(quick)
    return out
