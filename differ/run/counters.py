"""Where the training loop stands: its counters, checkpointed with the run, so that a resumed run
continues every schedule (tests, logs, checkpoints, target updates, training credit) exactly."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass
class Counters:
    t_env: int = 0  # env steps collected for training
    episode: int = 0  # training episodes collected
    train_steps: int = 0  # learner steps taken
    train_credit: float = 0.0  # learner steps earned (train_steps_per_episode per episode) and not yet taken
    test_round: int = 0  # evaluations made: each takes the next test_episodes episode seeds
    last_test_t: int = 0  # t_env of the last evaluation (the trainer starts it one interval back)
    last_log_t: int = 0  # t_env of the last metrics record
    last_ckpt_t: int = 0  # t_env of the last periodic checkpoint
    last_target_update_episode: int = 0  # episode of the last hard target update
    wall_time: float = 0.0  # seconds of training, summed over every session of the run
    fair_uniform_logs: int = 0  # fair replay's health: near-uniform log intervals in a row
    fair_warning: str = ""  # its warning, once given (it is given once per run)

    def due(self, last: int, interval: int) -> bool:
        """Have `interval` env steps passed since `last`? Never for an interval of 0."""
        return bool(interval) and self.t_env - last >= interval

    def restored(self, saved: dict) -> Counters:
        """These counters with a checkpoint's values; one written before a counter existed leaves
        that counter as it is here."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in saved.items() if k in known})
