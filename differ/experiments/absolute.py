"""marl-eval's absolute metric of a run (Gorsane et al. 2022): its best policy, re-evaluated
greedily on ten times the episodes of one of its test evaluations.

The best policy is the checkpoint whose test evaluation had the highest mean test return
(`test_return_mean` in metrics.jsonl). A checkpoint's test evaluation is the one logged nearest
its step, before or after (of two as near, the earlier): the test schedule starts at the first
batch and the checkpoint schedule at 0, so on the same interval each test comes a batch after a
checkpoint, and the newest test before it would be a whole interval older. Of checkpoints with
the same score, the one nearest its test, then the earliest. The return, not the win rate, so
that every environment is scored alike (and a win rate of 1 at several tests still has an
order). The episodes are the ones `differ evaluate CHECKPOINT episodes=N` plays: the test seed
stream from episode 10^9 on, apart from every training test's.

The result is cached in RUN/absolute_metrics.json with the checkpoint's name, step and file digest
(which pins its weights and config, seed included) and the episodes it played, so a second export
reads it, and a run that went on (another best checkpoint) or a rewritten checkpoint is evaluated
afresh.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorruptCheckpoint
from ..store import checkpoint as ckpt

FACTOR = 10  # episodes: ten times a test evaluation's
METRIC = "test_return_mean"
CACHE = "absolute_metrics.json"
NAMES = {"return": "episode_return", "battle_won": "win_rate", "ep_length": "episode_length"}


@dataclass
class Candidate:
    path: Path
    t_env: int
    test_t_env: int  # the step of the test evaluation that scores it
    test_return: float


def ranked_checkpoints(run_dir: Path, records: list[dict]) -> list[Candidate]:
    """The run's checkpoints, each scored by its nearest test, best first (none without tests)."""
    tests = sorted((int(r["t_env"]), float(r[METRIC])) for r in records if METRIC in r)
    if not tests:
        return []
    out = []
    for path in ckpt.list_checkpoints(run_dir):
        t = ckpt.t_env_of(path)
        out.append(Candidate(path, t, *min(tests, key=lambda test: (abs(test[0] - t), test[0]))))
    return sorted(out, key=lambda c: (-c.test_return, abs(c.test_t_env - c.t_env), c.t_env))


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _evaluate(run_dir: Path, path: Path, episodes: int) -> dict[str, list[float]]:
    """Greedy episodes of one of the run's checkpoints, per-episode values under marl-eval's names."""
    from ..acting.evaluation import evaluate_episodes
    from ..acting.runner import Runner
    from ..acting.schedules import EVALUATION_FIRST_EPISODE
    from ..assemble import load_run, team_of

    path, payload, cfg = load_run(path)
    ckpt.check_run(path, payload, ckpt.read_run_id(run_dir))  # not a renamed or copied-in file
    team = team_of(path, payload, cfg)
    per_episode: dict[str, list] = {}
    try:
        runner = Runner(team.test_env, team.learner.controller())
        evaluate_episodes(runner, team.cfg.seed, EVALUATION_FIRST_EPISODE, episodes, per_episode=per_episode)
    finally:
        team.close()
    return {NAMES.get(k, k): [float(x) for x in v] for k, v in per_episode.items()}


def absolute_metrics(run_dir: Path, records: list[dict], test_episodes: int) -> dict | None:
    """marl-eval's "absolute_metrics" of a run: from its cache where that is of the same
    checkpoint and episodes, else evaluated (and cached). None for a run without a scored,
    readable checkpoint. A damaged best checkpoint is reported and the next best one taken."""
    from ..acting.schedules import EVALUATION_FIRST_EPISODE

    cache_file = Path(run_dir) / CACHE
    try:
        cached = json.loads(cache_file.read_text())
    except (OSError, json.JSONDecodeError):
        cached = {}
    episodes = FACTOR * test_episodes
    for c in ranked_checkpoints(run_dir, records):
        key = {
            "checkpoint": c.path.name,
            "sha256": _sha256(c.path),
            "episodes": episodes,
            "first_episode": EVALUATION_FIRST_EPISODE,
        }
        if isinstance(cached, dict) and all(cached.get(k) == v for k, v in key.items()):
            return cached["metrics"]
        print(
            f"differ: {run_dir}: absolute metric: {episodes} episodes of {c.path.name} "
            f"(test return {c.test_return:.3g} at t_env {c.test_t_env:,})",
            file=sys.stderr,
        )
        try:
            metrics = _evaluate(run_dir, c.path, episodes)
        except CorruptCheckpoint as e:
            ckpt.warn(f"{e}; taking the next best checkpoint for the absolute metric")
            continue
        record = {**key, "t_env": c.t_env, "chosen_by": {METRIC: c.test_return, "test_t_env": c.test_t_env}}
        ckpt.write_atomic(cache_file, (json.dumps({**record, "metrics": metrics}, indent=1) + "\n").encode())
        return metrics
    return None
