"""Optional Weights & Biases sink (`wandb=true`): every metrics record also goes to a W&B run.

Offline by default (`wandb_mode=offline`: files under RUN_DIR/wandb, uploaded later with
`wandb sync`), so a run never needs a network or an account. The W&B run id is kept in
RUN_DIR/wandb_id and reused on resume: online, the resumed run continues the same W&B run.
Offline, each session writes its own folder with that id, and W&B's sync does not merge them
(the later upload replaces the earlier history): use online mode for runs you will resume.
Records carry `t_env` as their step metric rather than W&B's own step counter, since a resume
re-logs the interval after its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from ..errors import ConfigError, DifferError
from ..store.rundir import RunDir


def _new_id() -> str:
    """A W&B-style run id: 8 lowercase letters and digits."""
    import secrets
    import string

    return "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(8))


class WandbSink:
    def __init__(self, cfg, run_dir: Path, resumed: bool):
        try:
            import wandb
        except ImportError:
            raise ConfigError("wandb=true needs Weights & Biases: pip install 'differ-marl[wandb]'") from None
        id_file = RunDir(run_dir).wandb_id
        run_id = id_file.read_text().strip() if resumed and id_file.exists() else _new_id()
        try:
            self.run = wandb.init(
                project=cfg.wandb_project,
                entity=cfg.wandb_entity,
                mode=cfg.wandb_mode,
                id=run_id,
                resume="allow",
                dir=str(run_dir),
                name=run_dir.name,
                config=OmegaConf.to_container(cfg, resolve=True),
                settings=wandb.Settings(silent=True, console="off"),
            )
        except Exception as e:  # no API key online, no network, ...
            first = (str(e).splitlines() or [type(e).__name__])[0][:200]
            raise DifferError(
                f"wandb could not start ({type(e).__name__}: {first}); wandb_mode=offline needs no account or network"
            ) from None
        id_file.write_text(run_id + "\n")
        self.run.define_metric("t_env")
        self.run.define_metric("*", step_metric="t_env")

    def log(self, t_env: int, values: dict[str, float]) -> None:
        self.run.log({"t_env": int(t_env), **values})

    def close(self) -> None:
        self.run.finish()
