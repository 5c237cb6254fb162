"""`differ evaluate`: greedy episodes of a checkpoint, their spread, and the individual-reward dump (Fig. 10)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from ..acting.evaluation import evaluate_episodes
from ..acting.runner import Runner
from ..acting.schedules import EVALUATION_FIRST_EPISODE
from ..assemble import load_team
from ..config import section
from ..learners.decomposer import decompose_step
from ..replay.episode_buffer import EpisodeBuffer

DUMP_COLUMNS = ("episode", "t", "agent", "unit_type", "alive", "reward_team", "reward_i", "td_i", "g_i", "q_i")


def dump_individual_rewards(learner, spec, episodes, path: Path) -> int:
    """Write every agent's r_i, δ_i, g_i, Q_i, unit type and alive flag per step (the data of the
    paper's Fig. 10) as CSV; the decomposition uses the checkpoint's networks. Returns rows."""
    buf = EpisodeBuffer(spec, len(episodes), "float32")
    for e in episodes:
        buf.add_episode(e)
    batch = buf.collate(list(buf.episodes))
    fwd = learner.forward(batch)
    dec = decompose_step(learner.mixer, fwd, batch, learner.cfg.gamma, section(learner.cfg, "differ").g_clamp)
    td_i = (fwd.chosen - dec.y_i).detach()
    rows = 0
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DUMP_COLUMNS)
        for b, ep in enumerate(episodes):
            for t in range(ep.length):
                for i in range(spec.n_agents):
                    w.writerow(
                        [
                            b,
                            t,
                            i,
                            spec.unit_type_names[i],
                            int(batch.alive[b, t, i]),
                            f"{batch.reward[b, t].item():.6g}",
                            f"{dec.reward_i[b, t, i].item():.6g}",
                            f"{td_i[b, t, i].item():.6g}",
                            f"{dec.g[b, t, i].item():.6g}",
                            f"{fwd.chosen[b, t, i].item():.6g}",
                        ]
                    )
                    rows += 1
    return rows


def spread(per_episode: dict[str, list]) -> dict:
    """How far the means can be trusted: the return's sd and 95% interval (Student t, mean ±
    t(0.975, n−1)·sd/√n; null for one episode) and the win rate's 95% Wilson interval, over the
    evaluation episodes."""
    from scipy.stats import t as student_t

    out = {}
    r = np.asarray(per_episode.get("return", []), float)
    if len(r) > 1:
        sd = float(r.std(ddof=1))
        half = float(student_t.ppf(0.975, len(r) - 1)) * sd / math.sqrt(len(r))
        out.update(return_std=sd, return_ci95=[float(r.mean()) - half, float(r.mean()) + half])
    elif len(r) == 1:
        out.update(return_std=None, return_ci95=None)
    for name, w in per_episode.items():  # the yes/no outcomes (battle_won)
        if w and all(isinstance(x, bool) for x in w):
            n, p, z = len(w), float(np.mean(w)), 1.96
            centre = (p + z * z / (2 * n)) / (1 + z * z / n)
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
            out[f"{name}_ci95"] = [max(0.0, centre - half), min(1.0, centre + half)]
    return out


def evaluate(
    path: str, episodes: int = 32, seed: int | None = None, dump_individual_rewards_to: str | None = None
) -> dict:
    team = load_team(path)
    cfg, learner, env = team.cfg, team.learner, team.env
    runner = Runner(team.test_env, learner.controller())
    # evaluation episodes use their own seed range, apart from the ones seen in training tests
    kept = [] if dump_individual_rewards_to else None
    per_episode: dict[str, list] = {}
    stats = evaluate_episodes(
        runner, cfg.seed if seed is None else seed, EVALUATION_FIRST_EPISODE, episodes, kept, per_episode
    )
    team.close()
    out = {
        "checkpoint": str(team.checkpoint),
        "t_env": team.t_env,
        "episodes": episodes,
        **{k.removeprefix("test_"): v for k, v in stats.items()},
        **spread(per_episode),
    }
    if dump_individual_rewards_to:
        out["individual_rewards_rows"] = dump_individual_rewards(
            learner, env.spec, kept, Path(dump_individual_rewards_to)
        )
        out["individual_rewards_file"] = dump_individual_rewards_to
    return out
