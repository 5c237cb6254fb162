"""The Python API: what `differ train` and `differ evaluate` do, callable from a script or a
notebook. Keys are the command line's: `algo=` and `env=` pick presets, any other keyword is a
config key (`differ config` lists them), dotted ones through `**{"algo.lr": 1e-3}` or with `__`
for the dot (`algo__lr=1e-3`). Errors are the CLI's, raised as `differ.DifferError` subclasses
(`ConfigError`, `CheckpointError`, ...) with the same one-line messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainResult:
    """A finished (or gracefully stopped) run: where it lives and its result.json."""

    run_dir: Path
    result: dict  # t_env, stopped_early, wall_time_s, train_steps, the last test metrics, machine

    @property
    def test_return(self) -> float | None:
        return self.result.get("test_return_mean")

    @property
    def test_win_rate(self) -> float | None:
        return self.result.get("test_battle_won_mean")


def _cli_value(value: Any) -> str:
    """A Python value written as the command line would (true/false, null, YAML flow for lists
    and mappings); a string stays a string (quoted, so "yes" or "null" are not read as YAML)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple, dict, str)):
        return json.dumps(value)
    return str(value)


def _overrides(algo: str | None, env: str | None, keys: dict[str, Any]) -> dict[str, str]:
    out = {k.replace("__", "."): _cli_value(v) for k, v in keys.items()}
    if algo is not None:
        out["algo"] = algo
    if env is not None:
        out["env"] = env
    return out


def train(
    algo: str | None = "qmix", env: str | None = "smax", *, resume: str | Path | None = None, **config: Any
) -> TrainResult:
    """Train a new run, or continue one with `resume=RUN_DIR` (then `algo`/`env` are not used).

    >>> r = differ.train(algo="qmix_differ", env="lbf", t_max=20_000, seed=1, run_dir="runs/demo")
    >>> r.run_dir, r.test_return
    """
    from .commands.train import train_from_overrides

    if resume is not None:
        overrides = _overrides(None, None, config)
        overrides["resume"] = str(resume)
    else:
        overrides = _overrides(algo, env, config)
    result = train_from_overrides(overrides)
    return TrainResult(Path(result["run_dir"]), result)


def evaluate(
    path: str | Path,
    episodes: int = 32,
    seed: int | None = None,
    dump_individual_rewards: str | Path | None = None,
    video: str | Path | None = None,
    video_format: str = "mp4",
    fps: float = 10.0,
) -> dict:
    """Greedy episodes of a run's newest readable checkpoint (or of a checkpoint file): means,
    the return's sd and 95% CI, the win rate's 95% interval, as `differ evaluate` prints them.
    With `video=DIR`: the first `episodes` of those episodes rendered into DIR instead (MP4 or
    GIF), returning the files with each episode's return and length."""
    from .commands.evaluate import evaluate as _evaluate
    from .errors import ConfigError

    if episodes < 1:
        raise ConfigError(f"episodes must be at least 1, got {episodes}")
    if video is not None:
        from .commands.video import record

        if dump_individual_rewards is not None:
            raise ConfigError("video= and dump_individual_rewards= are separate evaluate runs; give one")
        return record(str(path), str(video), episodes, seed, video_format, fps)
    return _evaluate(
        str(path), episodes, seed, None if dump_individual_rewards is None else str(dump_individual_rewards)
    )
