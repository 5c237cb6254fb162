"""Checkpoints: one file per save, written atomically, loadable without executing code.

A checkpoint is a nested dict of tensors and plain Python values saved with `torch.save` and read
back with `torch.load(weights_only=True)`, which refuses anything that would run code. The replay
buffer is not inside it: its episodes are persisted incrementally as chunk files beside it
(`checkpoints/replay/`), and the checkpoint records which episode ids are live.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

_NAME = re.compile(r"ckpt_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that is missing or cannot be read; the message names the file and the fix."""


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def replay_dir(run_dir: Path) -> Path:
    """Where the replay buffer's chunk files live, beside the checkpoints that name them."""
    return checkpoint_dir(run_dir) / "replay"


def save(run_dir: Path, t_env: int, payload: dict) -> Path:
    d = checkpoint_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"ckpt_{t_env:012d}.pt"
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    d = checkpoint_dir(run_dir)
    found = [(int(m.group(1)), p) for p in d.glob("ckpt_*.pt") if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def latest(run_dir: Path) -> Path:
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(f"no checkpoint in {checkpoint_dir(run_dir)}: the run saved none yet "
                              f"(checkpoints are written every checkpoint_interval steps and at the end)")
    return found[-1]


def load(path: Path) -> dict:
    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as e:  # truncated or corrupt file, or one holding code
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120]}); "
            f"it is corrupt or not a differ checkpoint: delete it to fall back to the previous one") from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CheckpointError(f"{path} is not a differ checkpoint (format 1)")
    return payload
