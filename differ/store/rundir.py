"""The run directory: where it goes, its lock, what a resume reads from it, and the machine a run's
numbers belong to."""

from __future__ import annotations

import json
import time
from pathlib import Path

from omegaconf import DictConfig

from .lock import claimed_dir


class RunDir:
    """The files of a run directory, each named here once.

    config.yaml the run's config; metrics.jsonl and eval.jsonl its logs (eval: every test
    episode); result.json what the last session ended with; checkpoints/ (and checkpoints/replay/)
    its state; run_id the random id the run got at its start, which every checkpoint and replay chunk
    of it records; tb/ and wandb/ the loggers' files, wandb_id the W&B run to continue; train.log and
    worker.pid a sweep worker's log and process; .lock held while a process trains in it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    config = property(lambda self: self.path / "config.yaml")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    evals = property(lambda self: self.path / "eval.jsonl")
    result_file = property(lambda self: self.path / "result.json")
    wandb_id = property(lambda self: self.path / "wandb_id")
    tensorboard = property(lambda self: self.path / "tb")
    wandb = property(lambda self: self.path / "wandb")
    train_log = property(lambda self: self.path / "train.log")
    worker_pid = property(lambda self: self.path / "worker.pid")
    run_id = property(lambda self: self.path / "run_id")
    LOCK = ".lock"

    def result(self) -> dict:
        """result.json, or {} where there is none (or it cannot be read)."""
        try:
            out = json.loads(self.result_file.read_text())
        except (OSError, json.JSONDecodeError):
            return {}
        return out if isinstance(out, dict) else {}

    def finished(self, t_max: int) -> bool:
        """Did the run reach t_max (not stopped early by a signal)?"""
        result = self.result()
        return bool(result) and not result.get("stopped_early") and result.get("t_env", 0) >= t_max


def default_run_dir(cfg: DictConfig) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"runs/{cfg.algo.name}_{cfg.env.name}_{cfg.env.scenario}_s{cfg.seed}_{stamp}"


def run_lock(run_dir: Path, option: str = "run_dir"):
    """Create the run directory where needed and hold its lock while a process trains in it: a
    second `differ train` (or a second sweep over the same out=) on the same directory stops at
    once instead of interleaving checkpoints and metrics. A command refused before it wrote
    anything leaves no directory behind."""
    return claimed_dir(run_dir, RunDir.LOCK, option, str(run_dir))


def machine_info() -> dict[str, str]:
    """What a run's numbers depend on beyond its config: runs are bit-for-bit reproducible for a
    seed on one CPU model and package set, but not across CPUs (AVX2 and AVX-512 kernels round
    differently, and RL trajectories amplify the difference)."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return {"cpu": cpu, "python": platform.python_version(), **package_versions()}


CORE_PACKAGES = ("torch", "numpy", "jax", "jaxlib", "jaxmarl")
# the packages an environment family's episodes come from (a family of another package: none known)
ENV_PACKAGES = {
    "smax": ("jaxmarl",),
    "lbf": ("lbforaging", "gymnasium"),
    "rware": ("rware", "gymnasium"),
    "mpe": ("mpe2", "pettingzoo"),
    "mamujoco": ("gymnasium-robotics", "mujoco", "pettingzoo"),
    "grf": ("gfootball",),
    "pettingzoo": ("pettingzoo",),
}


def package_versions(env: str | None = None) -> dict[str, str]:
    """The installed versions of the packages a run's numbers depend on (and of `env`'s family's);
    a checkpoint records them, and a resume under other versions is no longer exact."""
    from importlib import metadata

    out = {}
    for pkg in dict.fromkeys((*CORE_PACKAGES, *ENV_PACKAGES.get(env, ()))):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out
