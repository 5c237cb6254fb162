"""A sweep's grid: comma lists and preset variants expanded into named runs, each validated up
front and marked new, resume (it has checkpoints) or skip (it reached its t_max)."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from ..config import SAME_EXPERIMENT_KEYS, ConfigError, build_config, cli_value, load_run_config
from ..store import checkpoint as ckpt
from ..store.rundir import RunDir

SWEEP_OPTIONS = ("out", "workers", "backend", "ray_address", "preset", "keep_replay", "list", "index")
# backend=submitit's job resources and where its executor runs them (submitit_backend.py)
SLURM_OPTIONS = tuple(f"slurm.{k}" for k in ("cluster", "partition", "time", "cpus", "mem", "gpus", "logs"))
RUN_DEFAULTS = {"torch_threads": "1"}  # one core per run (a worker's train.log gets plain progress lines)
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
    resume_changes: dict[str, str] = field(default_factory=dict)  # same-experiment keys this sweep changes

    def command(self) -> list[str]:
        """`differ train` arguments for this run (without the interpreter)."""
        if self.action == "resume":  # with this sweep's values of the keys a resume may take
            changes = [f"{k}={v}" for k, v in self.resume_changes.items()]
            return ["train", f"resume={self.run_dir}", *changes, f"t_max={self.t_max}"]
        return ["train", *(f"{k}={v}" for k, v in self.overrides.items()), f"run_dir={self.run_dir}"]


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
    for k in [k for k in args if k.startswith("slurm.")]:  # (no run config key starts so)
        if k not in SLURM_OPTIONS:
            raise ConfigError(f"unknown sweep option {k}; valid: {', '.join(SLURM_OPTIONS)}")
        opts[k] = args.pop(k)
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
    saved = RunDir(run.run_dir).config
    if not ckpt.list_checkpoints(run.run_dir):
        return  # new (a start that died before its first checkpoint starts over)
    # the saved config on top of today's schema: keys added since it was written take their
    # defaults, so a newer differ still recognises the run as the same one
    old = OmegaConf.to_container(build_config({}, base=load_run_config(saved))) if saved.exists() else {}
    now = OmegaConf.to_container(cfg)
    # keys that change what a run reports, where it computes or where it stops, not what it is:
    # the resumed run takes this sweep's values (t_max goes on the command anyway; torch_threads=0
    # is resolved once, when the run started, and stays so)
    for k in sorted(SAME_EXPERIMENT_KEYS - {"run_dir", "t_max"}):
        if k in old and k in now and old[k] != now[k] and not (k == "torch_threads" and now[k] == 0):
            run.resume_changes[k] = cli_value(now[k])
    for d in (old, now):
        for k in SAME_EXPERIMENT_KEYS:
            d.pop(k, None)
    if old != now:
        diff = _first_difference(old, now)
        raise ConfigError(
            f"{run.run_dir} holds a run with a different config ({diff}); choose another out= or remove that directory"
        )
    if RunDir(run.run_dir).finished(run.t_max):
        result = RunDir(run.run_dir).result()
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
