"""`differ sweep`: a grid of training runs on local worker processes, a Ray cluster or SLURM
(through submitit).

    differ sweep algo=qmix,qmix_differ env.scenario=3m,3s5z seed=1,2,3 t_max=100000 out=sweeps/demo

`list=true` prints the grid (index, state, run directory, the command that runs each run) and
starts nothing; `index=K` runs run K of it alone, as a SLURM job array's task does
(`index=$SLURM_ARRAY_TASK_ID`, docs/experiments.md): with the run's own lock, skip and resume,
so tasks of one grid run side by side and an array resubmitted after pre-emption goes on.

Comma lists expand into their product; every other `key=value` goes to each run unchanged. A
preset (`preset=warmup_ablation`, `differ/presets/sweep/*.yaml`) adds named variants (sets of
overrides) and default lists. Each run is an ordinary `differ train` process writing its own run
directory `OUT/<name>`, so the sweep is idempotent and crash-safe for free: a run whose
result.json shows it reached t_max is skipped, one with checkpoints is resumed (exactly), any
other starts afresh; a run that fails is reported and the others go on.
"""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

from ..config import ConfigError, flag_option, int_option
from ..store import checkpoint as ckpt
from ..store.lock import claimed_dir
from .backends import LocalBackend, RayBackend, schedule
from .grid import PlannedRun, expand_grid, load_preset, plan
from .monitor import Progress, listing, summary_table
from .submitit_backend import SubmititBackend, submitit_options

__all__ = ["sweep", "sweep_list", "plan", "expand_grid", "load_preset", "summary_table", "drop_replay", "PlannedRun"]


def drop_replay(run: PlannedRun) -> int:
    """Delete a finished run's replay chunks (GBs on big maps; only a continued run needs them) and
    return the bytes freed. The model checkpoints stay, for `differ evaluate` and Fig. 10."""
    replay = ckpt.replay_dir(run.run_dir)
    if run.status not in ("finished", "skipped") or not replay.is_dir():
        return 0
    freed = sum(p.stat().st_size for p in replay.iterdir() if p.is_file())
    shutil.rmtree(replay)
    return freed


def sweep_list(args: dict[str, str]) -> str:
    """The grid `args` describes, one line per run (`listing`); reads the run directories only."""
    _, runs = plan(args)
    return listing(runs)


def sweep(args: dict[str, str]) -> tuple[list[PlannedRun], Path]:
    """Plan and run a grid. One sweep at a time per out=: a second one stops at once (before it
    plans, starts or reports anything), whatever state the first one's runs are in. With
    index=K only run K runs, under its own run lock: tasks of one grid may run side by side."""
    if not str(args.get("out", "x")).strip():
        raise ConfigError("out= needs a directory, e.g. out=sweeps/demo")
    if "out" not in args or "index" in args:
        return _sweep(args)  # plan() reports a missing out=
    out = Path(args["out"]).resolve()
    with claimed_dir(out, ".sweep.lock", "out", f"sweep directory {out}"):
        return _sweep(args)


def _sweep(args: dict[str, str]) -> tuple[list[PlannedRun], Path]:
    opts, runs = plan(args)
    out = Path(opts["out"]).resolve()
    index = int_option(opts, "index", None, minimum=0)
    if index is not None:
        if index >= len(runs):
            raise ConfigError(
                f"index={index}: the grid has {len(runs)} runs (index 0 to {len(runs) - 1}; list=true shows them)"
            )
        runs = [runs[index]]
        out.mkdir(parents=True, exist_ok=True)
    backend = opts.get("backend", "local")
    if backend not in ("local", "ray", "submitit"):
        raise ConfigError(f"backend must be local, ray or submitit, got '{backend}'")
    workers = int_option(opts, "workers", None, minimum=1)
    slurm = [k for k in opts if k.startswith("slurm.")]
    if slurm and backend != "submitit":
        raise ConfigError(f"{slurm[0]} is an option of backend=submitit (this sweep's backend is {backend})")
    submitit = submitit_options(opts, out) if backend == "submitit" else None
    keep_replay = flag_option(opts, "keep_replay")
    n = {a: sum(r.action == a for r in runs) for a in ("new", "resume", "skip")}
    print(
        f"sweep {out}: {len(runs)} runs ({n['new']} new, {n['resume']} to resume, {n['skip']} finished "
        f"already), backend {backend}",
        file=sys.stderr,
    )
    if not keep_replay:  # runs finished by an earlier sweep, too
        freed = sum(drop_replay(r) for r in runs)
        if freed:
            print(
                f"deleted {freed / 2**30:.1f} GiB of replay chunks of finished runs (keep_replay=false)",
                file=sys.stderr,
            )
    state_file = "sweep.json" if index is None else f"sweep.index{index}.json"
    progress = Progress(runs, out, on_finish=None if keep_replay else drop_replay, state_file=state_file)

    def _terminate(signum, frame):  # SIGTERM (a scheduler, `kill`) stops the sweep like Ctrl-C
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        if backend == "submitit":
            runner = SubmititBackend(workers, submitit, sum(r.action != "skip" for r in runs))
        else:
            runner = RayBackend(workers, opts.get("ray_address")) if backend == "ray" else LocalBackend(workers)
        schedule(runs, runner, progress)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        progress.close()
        progress.write_state()
        if index is None:  # (tasks of an array would overwrite each other's)
            (out / "sweep_summary.md").write_text(summary_table(runs))
    return runs, out
