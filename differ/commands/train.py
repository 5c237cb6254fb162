"""`differ train`: start a run or resume one, in its run directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from shlex import quote

from omegaconf import DictConfig, OmegaConf

from ..config import build_config, load_run_config
from ..errors import CheckpointError, ConfigError, Interrupted, StorageError, storage_error
from ..interrupts import raise_if_interrupted
from ..run.trainer import Trainer
from ..store import checkpoint as ckpt
from ..store.rundir import RunDir, default_run_dir, machine_info, run_lock


def resume_config(run_dir: Path, overrides: dict[str, str]) -> DictConfig:
    if not RunDir(run_dir).config.exists():
        raise CheckpointError(
            f"{run_dir} holds no run to resume (no config.yaml: it was stopped before "
            f"writing anything, or is not a run directory); re-run the original "
            f"`differ train ... run_dir={quote(str(run_dir))}` command to start it afresh"
        )
    return build_config(overrides, base=load_run_config(RunDir(run_dir).config))


def train_from_overrides(overrides: dict[str, str]) -> dict:
    """`differ train`: a new run, or `resume=DIR` to continue one. Nothing in the run directory
    changes until the run is known to start: the config, the environment and (on resume) a
    readable checkpoint are all checked first, so a failed command leaves the directory as it
    was."""
    overrides = dict(overrides)
    resume = "resume" in overrides
    if resume:
        raw = overrides.pop("resume")
        if not raw.strip():  # (Path("") would be the current directory)
            raise ConfigError("resume= needs a run directory, e.g. resume=runs/my_run")
        run_dir = Path(raw)
        if not run_dir.is_dir():
            raise CheckpointError(f"resume={run_dir}: no such directory")
    else:
        cfg = build_config(overrides)
        run_dir = Path(cfg.run_dir or default_run_dir(cfg))
    try:
        with run_lock(run_dir, "resume" if resume else "run_dir"):
            if resume:  # the config is read under the lock: the directory may be in use
                cfg = resume_config(run_dir, overrides)
            elif ckpt.list_checkpoints(run_dir):
                raise CheckpointError(
                    f"{run_dir} already holds a run; continue it with "
                    f"`differ train resume={quote(str(run_dir))}` or choose another run_dir"
                )
            trainer = Trainer(cfg, run_dir)
            raise_if_interrupted()  # before anything in the directory changes
            if resume:
                trainer.resume(given=frozenset(overrides))
            else:
                cfg.run_dir = str(run_dir)
                trainer.start_new()
            OmegaConf.save(cfg, RunDir(run_dir).config)  # only now: e.g. a raised t_max on resume
            result = trainer.train()
            result["run_dir"] = str(run_dir)
            result["machine"] = machine_info()  # of the session that finished the run
            # the file names the directory relative to where the command ran, not by a path of this machine's
            saved = {**result, "run_dir": os.path.relpath(run_dir)}
            ckpt.write_atomic(RunDir(run_dir).result_file, (json.dumps(saved, indent=2) + "\n").encode())
    except StorageError:  # already one line (an OSError too)
        raise
    except OSError as e:
        raise storage_error(e, run_dir) from None
    except KeyboardInterrupt:
        raise interrupted(run_dir) from None
    return result


def interrupted(run_dir: Path) -> Interrupted:
    """What to run after a Ctrl-C that stopped the command: with a checkpoint written, the
    original command is refused (the directory holds a run), so the advice is resume=."""
    if ckpt.list_checkpoints(run_dir):
        return Interrupted(f"interrupted; continue the run with `differ train resume={quote(str(run_dir))}`")
    return Interrupted("interrupted before the run's first checkpoint; re-run the same command to start it afresh")
