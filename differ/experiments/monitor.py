"""Watching a sweep: per-run progress from the run directories, the aggregate bar, `OUT/sweep.json`,
and the summary table."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from ..store.rundir import RunDir
from .grid import PlannedRun


def _last_t_env(run_dir: Path) -> int:
    """The newest t_env in a running run's metrics.jsonl (reads only the file's tail)."""
    try:
        with open(RunDir(run_dir).metrics, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().decode(errors="replace").splitlines()
        for line in reversed(lines):
            try:
                return int(json.loads(line)["t_env"])
            except (json.JSONDecodeError, KeyError, ValueError):
                continue
    except OSError:
        pass
    return 0


def _error_line(log: Path) -> str:
    try:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errors = [ln for ln in lines if ln.startswith("differ: error:") or "Error" in ln]
    return (errors or lines or [""])[-1][:300]


class Progress:
    """Across runs: finished / running / failed counts, aggregate env steps/s, and a tqdm bar
    over the grid's total env steps when stderr is a terminal; one line per finished run.
    `on_finish(run)` is called for every run that finishes (the sweep's replay pruning)."""

    def __init__(self, runs: list[PlannedRun], out: Path, on_finish=None, state_file: str = "sweep.json"):
        from tqdm import tqdm

        self.runs, self.out, self.on_finish, self.state_file = runs, out, on_finish, state_file
        self.t0, self.steps0 = time.time(), sum(r.t_env for r in runs)
        self.bar = tqdm(
            total=sum(r.t_max for r in runs),
            initial=self.steps0,
            unit="step",
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
        )

    def counts(self) -> dict[str, int]:
        c = {s: 0 for s in ("finished", "running", "failed", "pending")}
        for r in self.runs:
            key = "finished" if r.status in ("finished", "skipped") else r.status
            c[key] = c.get(key, 0) + 1
        return c

    def refresh(self) -> None:
        for r in self.runs:
            if r.status == "running":
                r.t_env = max(r.t_env, _last_t_env(r.run_dir))
        steps = sum(r.t_env for r in self.runs)
        rate = (steps - self.steps0) / max(time.time() - self.t0, 1e-9)
        self.bar.update(steps - self.bar.n)
        self.bar.set_postfix({**self.counts(), "steps/s": f"{rate:.0f}"}, refresh=True)
        self.write_state()

    def event(self, run: PlannedRun) -> None:
        c = self.counts()
        done = c["finished"] + c["failed"] + c.get("interrupted", 0)
        msg = f"[{done}/{len(self.runs)}] {run.status} {run.name}"
        if run.status == "finished":
            msg += f" ({_metric_text(run.result)}, {run.wall_s / 60:.1f} min)"
            if self.on_finish:
                self.on_finish(run)
        elif run.status in ("failed", "interrupted"):
            msg += f": {run.error}" if run.error else ""
        self.bar.write(msg, file=sys.stderr)
        self.refresh()

    def write_state(self) -> None:
        state = {
            "runs": [
                {
                    "name": r.name,
                    "status": r.status,
                    "t_env": r.t_env,
                    "t_max": r.t_max,
                    "run_dir": str(r.run_dir),
                    "error": r.error,
                }
                for r in self.runs
            ]
        }
        tmp = self.out / f".{self.state_file}.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.out / self.state_file)

    def close(self) -> None:
        self.bar.close()


def _metric_text(result: dict) -> str:
    if "test_battle_won_mean" in result:
        return f"test win {result['test_battle_won_mean']:.2f}"
    if "test_return_mean" in result:
        return f"test return {result['test_return_mean']:.2f}"
    return "no test"


def summary_table(runs: list[PlannedRun]) -> str:
    lines = [
        "| run | status | env steps | final test metric | wall-clock | note |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        metric = _metric_text(r.result) if r.result else "-"
        seconds = r.result.get("wall_time_s") or r.wall_s  # the run's own training time, all sessions
        wall = f"{seconds / 60:.1f} min" if seconds else "-"
        lines.append(f"| {r.name} | {r.status} | {r.t_env:,} / {r.t_max:,} | {metric} | {wall} | {r.error or ''} |")
    return "\n".join(lines) + "\n"


def state_of(run: PlannedRun) -> str:
    """finished, partial (with the step its newest checkpoint holds) or new."""
    if run.action == "skip":
        return "finished"
    return f"partial t={run.t_env}" if run.action == "resume" else "new"


def listing(runs: list[PlannedRun]) -> str:
    """`differ sweep ... list=true`: one line per run of the grid: its index (index=K runs it
    alone), its state, its run directory and the `differ train` command that runs it."""
    import shlex

    width = max((len(state_of(r)) for r in runs), default=3)
    return "\n".join(
        f"{k}\t{state_of(r):<{width}}\t{r.run_dir}\t{shlex.join(['differ', *map(str, r.command())])}"
        for k, r in enumerate(runs)
    )
