"""`differ export marl-eval DIR... out=FILE`: per-episode test results in the JSON layout that
marl-eval's tools read (instadeepai/marl-eval, "Data Structure for Raw Experiment data"):

    {env: {task: {algorithm: {"run_<i>": {"step_<k>": {"step_count": t_env,
                                                     "episode_return": [...], "win_rate": [...]},
                                          "absolute_metrics": {"episode_return": [...], ...}}}}}}

env is the run's environment family, task its scenario, algorithm its label (as in `differ
plot`), one run per seed, one step per test evaluation, one value per test episode (from the
run's eval.jsonl). Beside the steps, each run's "absolute_metrics": its best checkpoint
re-evaluated greedily on 10× the test episodes, with the same metrics (absolute.py: which
checkpoint, which episodes; cached in the run directory). `absolute=false` leaves them out (they
cost an evaluation per run the first time); so does a run without checkpoints, with a note.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import ConfigError
from ..store.metrics import read_jsonl
from ..store.rundir import RunDir
from .absolute import NAMES, absolute_metrics
from .results import Run


def marl_eval(runs: list[Run], absolute: bool = True) -> dict:
    data: dict = {}
    missing, no_checkpoint = [], []
    by_group: dict[tuple, list[Run]] = {}
    for r in runs:
        env, task = r.config["env.name"], r.config["env.scenario"]
        by_group.setdefault((env, task, r.label), []).append(r)
    for (env, task, label), rs in by_group.items():
        algo = data.setdefault(env, {}).setdefault(task, {}).setdefault(label, {})
        for r in sorted(rs, key=lambda r: r.seed):
            tests = read_jsonl(RunDir(r.path).evals)
            if not tests:
                missing.append(str(r.path))
                continue
            run = {
                f"step_{k}": {
                    "step_count": rec["t_env"],
                    **{NAMES.get(m, m): v for m, v in rec.items() if m != "t_env"},
                }
                for k, rec in enumerate(tests)
            }
            if absolute:
                best = absolute_metrics(r.path, r.records, int(r.config["test_episodes"]))
                if best is None:
                    no_checkpoint.append(str(r.path))
                else:
                    run["absolute_metrics"] = best
            algo[f"run_{len(algo)}"] = run
        if not algo:
            del data[env][task][label]
    if missing:
        print(
            f"note: {len(missing)} run(s) without eval.jsonl (made before differ kept per-episode "
            f"test results) left out: {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}",
            file=sys.stderr,
        )
    if no_checkpoint:
        print(
            f"note: {len(no_checkpoint)} run(s) without a readable checkpoint scored by a test: no "
            f"absolute_metrics: {', '.join(no_checkpoint[:3])}{' ...' if len(no_checkpoint) > 3 else ''}",
            file=sys.stderr,
        )
    data = {e: {t: a for t, a in tasks.items() if a} for e, tasks in data.items()}
    data = {e: tasks for e, tasks in data.items() if tasks}
    if not data:
        raise ConfigError("no run holds eval.jsonl (per-episode test results); train with this version of differ")
    return data


def write(runs: list[Run], out: str | Path, absolute: bool = True) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(marl_eval(runs, absolute), indent=1) + "\n")
    return out
