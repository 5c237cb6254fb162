"""Metrics: one JSON object per log event in `metrics.jsonl`, mirrored to TensorBoard, and the
per-episode results of every test in `eval.jsonl` (for spreads and marl-eval's tools)."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path

from .rundir import RunDir


class Accumulator:
    """Running sums of scalar statistics between two log events (checkpointable)."""

    def __init__(self, state: dict | None = None):
        self.sums: dict[str, float] = defaultdict(float, (state or {}).get("sums", {}))
        self.counts: dict[str, int] = defaultdict(int, (state or {}).get("counts", {}))

    def add(self, stats: dict[str, float]) -> None:
        for k, v in stats.items():
            if v is None:
                continue
            self.sums[k] += float(v)
            self.counts[k] += 1

    def means(self, suffix: str = "_mean", raw: tuple[str, ...] = ()) -> dict[str, float]:
        """Means; keys in `raw` keep their name, the others get `suffix`."""
        return {(k if k in raw else k + suffix): self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}

    def clear(self) -> None:
        self.sums.clear()
        self.counts.clear()

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts)}


class MetricsLogger:
    def __init__(self, run_dir: Path, tensorboard: bool = True, resume_t_env: int | None = None, sink=None):
        self.path, self.eval_path = RunDir(run_dir).metrics, RunDir(run_dir).evals
        self.rows = 0  # rows in metrics.jsonl (a checkpoint records it: a resume checks none was lost)
        if resume_t_env is not None:
            for path in (self.path, self.eval_path):
                self._truncate_after(path, resume_t_env)
            self.rows = len(read_jsonl(self.path))
        self.sink = sink  # e.g. WandbSink: log(t_env, values) and close()
        self.tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            # purge_step drops events a killed run wrote after its last checkpoint
            purge = resume_t_env + 1 if resume_t_env is not None else None
            self.tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=purge)

    @staticmethod
    def _truncate_after(path: Path, t_env: int) -> None:
        """Keep only records up to the checkpoint we resume from: no duplicates, no gaps."""
        if not path.exists():
            return
        kept = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:  # a line cut by a kill
                continue
            if rec.get("t_env", math.inf) <= t_env:
                kept.append(line)
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        tmp.replace(path)

    def log(self, t_env: int, values: dict[str, float]) -> None:
        rec = {"t_env": int(t_env), **{k: float(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        self.rows += 1
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, v, t_env)
        if self.sink is not None:
            self.sink.log(t_env, rec)

    def log_episodes(self, t_env: int, episodes: dict[str, list]) -> None:
        """One test's per-episode values, e.g. {"return": [...], "battle_won": [...]}."""
        rec = {"t_env": int(t_env), **{k: [float(x) for x in v] for k, v in episodes.items()}}
        with open(self.eval_path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def close(self, quiet: bool = False) -> None:
        """Flush and close TensorBoard; `quiet` (on the way out of an error) ignores its failures,
        so the error that stopped the run is the one reported."""
        for name in ("tb", "sink"):
            writer = getattr(self, name)
            if writer is None:
                continue
            try:
                writer.close()
            except Exception:
                if not quiet:
                    raise
            setattr(self, name, None)


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL log (metrics.jsonl, eval.jsonl); a line cut by a kill mid-write is
    skipped, a missing file has none."""
    path = Path(path)
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def rows_up_to(path: Path, t_env: int) -> int:
    """How many records of a JSONL log have t_env <= `t_env` (a resume drops the later ones)."""
    return sum(1 for rec in read_jsonl(path) if rec.get("t_env", math.inf) <= t_env)
