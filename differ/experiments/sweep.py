"""`differ sweep`: a grid of training runs on local worker processes or a Ray cluster.

    differ sweep algo=qmix,qmix_differ env.scenario=3m,3s5z seed=1,2,3 t_max=100000 out=sweeps/demo

Comma lists expand into their product; every other `key=value` goes to each run unchanged. A
preset (`preset=warmup_ablation`, `differ/presets/sweep/*.yaml`) adds named variants (sets of
overrides) and default lists. Each run is an ordinary `differ train` process writing its own run
directory `OUT/<name>`, so the sweep is idempotent and crash-safe for free: a run whose
result.json shows it reached t_max is skipped, one with checkpoints is resumed (exactly), any
other starts afresh; a run that fails is reported and the others go on.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from .. import checkpoint as ckpt
from ..config import ConfigError, build_config, flag_option, int_option, load_run_config
from ..lock import exclusive

SWEEP_OPTIONS = ("out", "workers", "backend", "ray_address", "preset", "keep_replay")
RUN_DEFAULTS = {"torch_threads": "1", "progress": "false"}  # one core per run; no bars from workers
ALWAYS_NAMED = ("algo", "env", "env.scenario", "seed")
PRESET_DIR = Path(__file__).resolve().parent.parent / "presets" / "sweep"


@dataclass
class PlannedRun:
    name: str
    overrides: dict[str, str]
    run_dir: Path
    t_max: int
    action: str = "new"  # new | resume | skip
    status: str = "pending"  # pending | running | finished | failed | interrupted | skipped
    t_env: int = 0
    result: dict = field(default_factory=dict)
    error: str = ""
    wall_s: float = 0.0

    def command(self) -> list[str]:
        """`differ train` arguments for this run (without the interpreter)."""
        if self.action == "resume":
            return ["train", f"resume={self.run_dir}", f"t_max={self.t_max}"]
        return ["train", *(f"{k}={v}" for k, v in self.overrides.items()), f"run_dir={self.run_dir}"]


# ---- the grid ----------------------------------------------------------------------------------
def _values(v: str) -> list[str]:
    v = str(v)
    if v.startswith("[") or "," not in v:  # a list literal is one value
        return [v]
    return [x.strip() for x in v.split(",") if x.strip()]


def load_preset(name: str) -> dict:
    path = PRESET_DIR / f"{name}.yaml"
    choices = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    if name not in choices:  # also refuses preset=../algo/qmix
        raise ConfigError(f"unknown sweep preset '{name}'; valid choices: {', '.join(choices)}")
    return OmegaConf.to_container(OmegaConf.load(path))


def expand_grid(args: dict[str, str], variants: dict[str, dict] | None = None) -> list[tuple[str, dict[str, str]]]:
    """[(run name, overrides)] for the product of every comma list (and of the variants)."""
    lists = {k: _values(v) for k, v in args.items()}
    swept = [k for k, vs in lists.items() if len(vs) > 1]
    variants = variants or {"": {}}
    out, names = [], set()
    for vname, vover in variants.items():
        clash = set(vover) & set(args)
        if clash:
            raise ConfigError(f"the preset's variants set {', '.join(sorted(clash))}; do not pass it as well")
        for combo in itertools.product(*lists.values()):
            run = dict(zip(lists, combo))
            # names in a fixed key order, whatever the order of the arguments (which sets the
            # order the runs start in): a re-run with reordered arguments finds the same runs
            named = [k for k in ALWAYS_NAMED if k in run] + [k for k in swept if k not in ALWAYS_NAMED]
            parts = [vname] if vname else []
            for k in named:
                v = run[k]
                parts.append(f"s{v}" if k == "seed" else v if k in ALWAYS_NAMED else f"{k.split('.')[-1]}{v}")
            run.update({k: str(v) for k, v in vover.items()})
            for k, v in RUN_DEFAULTS.items():
                run.setdefault(k, v)
            name = re.sub(r"[^A-Za-z0-9_.=+-]", "_", "-".join(parts) or "run")
            if name in names:
                raise ConfigError(f"two runs of the grid would share the name '{name}'")
            names.add(name)
            out.append((name, run))
    return out


def plan(args: dict[str, str]) -> tuple[dict, list[PlannedRun]]:
    """Split sweep options from run overrides, expand, validate every run's config up front, and
    decide per run: skip (finished), resume (has checkpoints) or new."""
    args = dict(args)
    opts = {k: args.pop(k) for k in SWEEP_OPTIONS if k in args}
    if "out" not in opts:
        raise ConfigError("sweep needs out=DIR (where the run directories go)")
    if "run_dir" in args:
        raise ConfigError("run_dir is set by the sweep (OUT/<run name>); use out= instead")
    variants = None
    if "preset" in opts:
        preset = load_preset(opts["preset"])
        for k, v in (preset.get("grid") or {}).items():
            args.setdefault(k, ",".join(map(str, v)) if isinstance(v, list) else str(v))
        variants = preset.get("variants")
    out = Path(opts["out"]).resolve()
    runs = []
    for name, overrides in expand_grid(args, variants):
        try:
            cfg = build_config(overrides)
        except ConfigError as e:
            raise ConfigError(f"run {name}: {e}") from None
        run = PlannedRun(name, overrides, out / name, int(cfg.t_max))
        _decide(run, cfg)
        runs.append(run)
    return opts, runs


def _decide(run: PlannedRun, cfg) -> None:
    saved = run.run_dir / "config.yaml"
    if not ckpt.list_checkpoints(run.run_dir):
        return  # new (a start that died before its first checkpoint starts over)
    # the saved config on top of today's schema: keys added since it was written take their
    # defaults, so a newer differ still recognises the run as the same one
    old = OmegaConf.to_container(build_config({}, base=load_run_config(saved))) if saved.exists() else {}
    now = OmegaConf.to_container(cfg)
    for d in (old, now):  # keys that change neither what a run computes nor where it stops
        for k in ("run_dir", "t_max", "checkpoint_interval", "progress", "tensorboard"):
            d.pop(k, None)
    if old != now:
        diff = _first_difference(old, now)
        raise ConfigError(f"{run.run_dir} holds a run with a different config ({diff}); "
                          f"choose another out= or remove that directory")
    result = _read_json(run.run_dir / "result.json")
    if result and not result.get("stopped_early") and result.get("t_env", 0) >= run.t_max:
        run.action, run.status, run.result, run.t_env = "skip", "skipped", result, result["t_env"]
    else:
        run.action = "resume"
        run.t_env = ckpt.t_env_of(ckpt.latest(run.run_dir))


def _first_difference(a: dict, b: dict, prefix: str = "") -> str:
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            d = _first_difference(a[k], b[k], f"{prefix}{k}.")
            if d:
                return d
        elif a.get(k) != b.get(k):
            return f"{prefix}{k}: {a.get(k)!r} there, {b.get(k)!r} now"
    return ""


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def _last_t_env(run_dir: Path) -> int:
    """The newest t_env in a running run's metrics.jsonl (reads only the file's tail)."""
    try:
        with open(run_dir / "metrics.jsonl", "rb") as f:
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


# ---- running ---------------------------------------------------------------------------------------
class Progress:
    """Across runs: finished / running / failed counts, aggregate env steps/s, and a tqdm bar
    over the grid's total env steps when stderr is a terminal; one line per finished run.
    `on_finish(run)` is called for every run that finishes (the sweep's replay pruning)."""

    def __init__(self, runs: list[PlannedRun], out: Path, on_finish=None):
        from tqdm import tqdm

        self.runs, self.out, self.on_finish = runs, out, on_finish
        self.t0, self.steps0 = time.time(), sum(r.t_env for r in runs)
        self.bar = tqdm(total=sum(r.t_max for r in runs), initial=self.steps0, unit="step",
                        disable=not sys.stderr.isatty(), dynamic_ncols=True)

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
        state = {"runs": [{"name": r.name, "status": r.status, "t_env": r.t_env, "t_max": r.t_max,
                           "run_dir": str(r.run_dir), "error": r.error} for r in self.runs]}
        tmp = self.out / ".sweep.json.tmp"
        tmp.write_text(json.dumps(state, indent=1))
        tmp.replace(self.out / "sweep.json")

    def close(self) -> None:
        self.bar.close()


def _metric_text(result: dict) -> str:
    if "test_battle_won_mean" in result:
        return f"test win {result['test_battle_won_mean']:.2f}"
    if "test_return_mean" in result:
        return f"test return {result['test_return_mean']:.2f}"
    return "no test"


def _finish(run: PlannedRun, rc: int, log: Path) -> None:
    result = _read_json(run.run_dir / "result.json")
    if rc == 0 and result:
        run.result, run.t_env = result, result.get("t_env", run.t_env)
        run.status = "interrupted" if result.get("stopped_early") else "finished"
    else:
        run.status = "failed"
        run.error = (f"exit {rc}: " if rc else "") + _error_line(log) + f" (log: {log})"
    if run.status != "finished":
        # what a re-run continues from is the newest checkpoint, not the last metrics row
        found = ckpt.list_checkpoints(run.run_dir)
        run.t_env = ckpt.t_env_of(found[-1]) if found else 0


def drop_replay(run: PlannedRun) -> int:
    """Delete a finished run's replay chunks (GBs on big maps; only a continued run needs them) and
    return the bytes freed. The model checkpoints stay, for `differ evaluate` and Fig. 10."""
    replay = ckpt.replay_dir(run.run_dir)
    if run.status not in ("finished", "skipped") or not replay.is_dir():
        return 0
    freed = sum(p.stat().st_size for p in replay.iterdir() if p.is_file())
    shutil.rmtree(replay)
    return freed


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


def _start(r: PlannedRun, backend: str) -> Path:
    """Mark a run running and head its log (train.log, appended over resumes) with the command."""
    r.run_dir.mkdir(parents=True, exist_ok=True)
    log = r.run_dir / "train.log"
    with open(log, "a") as f:
        f.write(f"\n# differ {' '.join(r.command())} ({backend}, {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    r.status = "running"
    return log


def run_local(runs: list[PlannedRun], workers: int, progress: Progress) -> None:
    """Worker processes, at most `workers` at once, each `python -m differ train ...`."""
    queue = [r for r in runs if r.action != "skip"]
    active: dict[str, tuple[subprocess.Popen, float, Path]] = {}
    try:
        while queue or active:
            while queue and len(active) < workers:
                r = queue.pop(0)
                log = _start(r, "local")
                with open(log, "a") as f:
                    # own session: a terminal's Ctrl-C reaches only the sweep, which then sends
                    # each worker one SIGTERM (a second signal would stop it without a checkpoint)
                    proc = subprocess.Popen([sys.executable, "-m", "differ", *r.command()], stdout=f,
                                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            start_new_session=True)
                (r.run_dir / "worker.pid").write_text(str(proc.pid))
                active[r.name] = (proc, time.time(), log)
            for name in list(active):
                proc, start, log = active[name]
                rc = proc.poll()
                if rc is not None:
                    r = next(x for x in runs if x.name == name)
                    r.wall_s = time.time() - start
                    _finish(r, rc, log)
                    del active[name]
                    progress.event(r)
            progress.refresh()
            time.sleep(0.5)
    except KeyboardInterrupt:
        # workers stop at the end of their batch with a final checkpoint; a re-run resumes them
        for proc, _, _ in active.values():
            proc.send_signal(signal.SIGTERM)
        for name, (proc, start, log) in active.items():
            proc.wait()
            r = next(x for x in runs if x.name == name)
            r.wall_s = time.time() - start
            _finish(r, proc.returncode, log)
            if r.status == "failed":
                r.status, r.error = "interrupted", "stopped by Ctrl-C; re-run the sweep to resume it"
        raise


def run_ray(runs: list[PlannedRun], workers: int | None, address: str | None, progress: Progress) -> None:
    """The same runs as Ray tasks (one CPU each). On a cluster, OUT must be on a filesystem every
    node sees and differ must be installed on every node."""
    try:
        import ray
    except ImportError:
        raise ConfigError("backend=ray needs Ray: pip install 'differ-marl[ray]'") from None

    started_here = not ray.is_initialized()
    if started_here:
        kw = {"address": address} if address else {"num_cpus": workers or default_workers()}
        ray.init(include_dashboard=False, log_to_driver=False, **kw)

    @ray.remote(num_cpus=1)
    def train_task(args: list[str], log: str) -> int:
        import subprocess as sp
        import sys as s

        with open(log, "a") as f:
            return sp.call([s.executable, "-m", "differ", *args], stdout=f, stderr=sp.STDOUT, stdin=sp.DEVNULL)

    queue = [r for r in runs if r.action != "skip"]
    limit = workers or int(ray.cluster_resources().get("CPU", 1))
    active: dict = {}
    try:
        while queue or active:
            while queue and len(active) < limit:
                r = queue.pop(0)
                log = _start(r, "ray")
                active[train_task.remote(r.command(), str(log))] = (r, time.time(), log)
            done, _ = ray.wait(list(active), num_returns=1, timeout=1.0)
            for ref in done:
                r, start, log = active.pop(ref)
                r.wall_s = time.time() - start
                try:
                    rc = ray.get(ref)
                except Exception as e:  # the task itself died (node lost, ...)
                    rc = -1
                    r.error = f"ray task failed: {type(e).__name__}: {str(e)[:200]}"
                _finish(r, rc, log)
                progress.event(r)
            progress.refresh()
    finally:
        if started_here:
            ray.shutdown()


def summary_table(runs: list[PlannedRun]) -> str:
    lines = ["| run | status | env steps | final test metric | wall-clock | note |",
             "| --- | --- | --- | --- | --- | --- |"]
    for r in runs:
        metric = _metric_text(r.result) if r.result else "-"
        seconds = r.result.get("wall_time_s") or r.wall_s  # the run's own training time, all sessions
        wall = f"{seconds / 60:.1f} min" if seconds else "-"
        lines.append(f"| {r.name} | {r.status} | {r.t_env:,} / {r.t_max:,} | {metric} | {wall} | {r.error or ''} |")
    return "\n".join(lines) + "\n"


def sweep(args: dict[str, str]) -> tuple[list[PlannedRun], Path]:
    """Plan and run a grid. One sweep at a time per out=: a second one stops at once (before it
    plans, starts or reports anything), whatever state the first one's runs are in."""
    if not str(args.get("out", "x")).strip():
        raise ConfigError("out= needs a directory, e.g. out=sweeps/demo")
    if "out" not in args:
        return _sweep(args)  # plan() reports the missing out=
    out = Path(args["out"]).resolve()
    try:
        created = not out.is_dir()
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"out={args['out']} cannot be used: {e.strerror or type(e).__name__}") from None
    try:
        with exclusive(out / ".sweep.lock", f"sweep directory {out}"):
            return _sweep(args)
    finally:
        if created and {p.name for p in out.iterdir()} <= {".sweep.lock"}:  # bad input: leave nothing
            (out / ".sweep.lock").unlink(missing_ok=True)
            out.rmdir()


def _sweep(args: dict[str, str]) -> tuple[list[PlannedRun], Path]:
    opts, runs = plan(args)
    out = Path(opts["out"]).resolve()
    backend = opts.get("backend", "local")
    if backend not in ("local", "ray"):
        raise ConfigError(f"backend must be local or ray, got '{backend}'")
    workers = int_option(opts, "workers", None, minimum=1)
    keep_replay = flag_option(opts, "keep_replay")
    n = {a: sum(r.action == a for r in runs) for a in ("new", "resume", "skip")}
    print(f"sweep {out}: {len(runs)} runs ({n['new']} new, {n['resume']} to resume, {n['skip']} finished "
          f"already), backend {backend}", file=sys.stderr)
    if not keep_replay:  # runs finished by an earlier sweep, too
        freed = sum(drop_replay(r) for r in runs)
        if freed:
            print(f"deleted {freed / 2**30:.1f} GiB of replay chunks of finished runs (keep_replay=false)",
                  file=sys.stderr)
    progress = Progress(runs, out, on_finish=None if keep_replay else drop_replay)

    def _terminate(signum, frame):  # SIGTERM (a scheduler, `kill`) stops the sweep like Ctrl-C
        raise KeyboardInterrupt

    old_term = signal.signal(signal.SIGTERM, _terminate)
    try:
        if backend == "ray":
            run_ray(runs, workers, opts.get("ray_address"), progress)
        else:
            run_local(runs, workers or default_workers(), progress)
    finally:
        signal.signal(signal.SIGTERM, old_term)
        progress.close()
        progress.write_state()
        (out / "sweep_summary.md").write_text(summary_table(runs))
    return runs, out
