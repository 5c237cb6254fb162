"""The training progress bar."""

from __future__ import annotations

import sys


class ProgressBar:
    """A tqdm bar over t_env (stderr); by default only when stderr is a terminal."""

    def __init__(self, cfg, t_env: int):
        from tqdm import tqdm

        on = sys.stderr.isatty() if cfg.progress is None else cfg.progress
        self.bar = tqdm(total=cfg.t_max, initial=t_env, unit="step", dynamic_ncols=True,
                        disable=not on, smoothing=0.1)
        self.t = t_env

    def update(self, c, last_test, recent_return):
        self.bar.update(c["t_env"] - self.t)
        self.t = c["t_env"]
        post = {"return": f"{recent_return:.2f}"}
        if "test_return_mean" in last_test:
            post["test_ret"] = f"{last_test['test_return_mean']:.2f}"
        if "test_battle_won_mean" in last_test:
            post["test_win"] = f"{last_test['test_battle_won_mean']:.2f}"
        self.bar.set_postfix(post, refresh=False)

    def close(self):
        self.bar.close()
