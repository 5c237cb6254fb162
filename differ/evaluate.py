"""`differ evaluate PATH`: greedy episodes from a run directory or a checkpoint file."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from . import checkpoint as ckpt
from .config import build_config
from .controller import Controller
from .run import build_learner, evaluate_episodes, make_envs
from .runner import Runner


def evaluate(path: str, episodes: int = 32, seed: int | None = None) -> dict:
    path = Path(path)
    if not path.exists():
        raise ckpt.CheckpointError(f"{path} does not exist (expected a run directory or a checkpoint file)")
    ckpt_path = ckpt.latest(path) if path.is_dir() else path
    payload = ckpt.load(ckpt_path)
    cfg = build_config({}, base=OmegaConf.create(payload["config"]))
    env, test_env = make_envs(cfg)
    learner = build_learner(cfg, env.spec)
    learner.load_state_dict(payload["learner"])
    runner = Runner(test_env, Controller(learner.agent))
    # evaluation episodes use their own seed range, apart from the ones seen in training tests
    stats = evaluate_episodes(runner, cfg.seed if seed is None else seed, 10**9, episodes)
    for e in {id(env): env, id(test_env): test_env}.values():
        e.close()
    return {"checkpoint": str(ckpt_path), "t_env": payload["counters"]["t_env"], "episodes": episodes,
            **{k.removeprefix("test_"): v for k, v in stats.items()}}
