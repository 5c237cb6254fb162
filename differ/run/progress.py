"""How a run reports while it trains.

On a terminal: a tqdm bar over t_env. Anywhere else (nohup, SLURM, a CI log, a sweep's
train.log): the run directory at start and one plain line per log interval, since a bar's
carriage returns would be one unreadable line there. `progress=true|false` forces the bar on or
everything off; the default (null) picks by whether stderr is a terminal.
"""

from __future__ import annotations

import sys
import time


def _duration(seconds: float) -> str:
    s = int(max(seconds, 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class Progress:
    def __init__(self, cfg, t_env: int, run_dir, resumed: bool = False):
        from tqdm import tqdm

        tty = sys.stderr.isatty()
        bar = tty if cfg.progress is None else cfg.progress
        self.lines = cfg.progress is None and not tty
        self.bar = tqdm(total=cfg.t_max, initial=t_env, unit="step", dynamic_ncols=True, disable=not bar, smoothing=0.1)
        self.t, self.t_max = t_env, cfg.t_max
        self.since = (t_env, time.time())  # speed over the last interval, for the ETA
        if cfg.progress is not False:
            what = "resuming" if resumed else "training"
            print(
                f"differ: {what} {cfg.algo.name} on {cfg.env.name} {cfg.env.scenario}, seed {cfg.seed}, "
                f"t_max {cfg.t_max:,}, from t_env {t_env:,}: {run_dir}",
                file=sys.stderr,
                flush=True,
            )

    def update(self, c, last_test, recent_return):
        self.bar.update(c.t_env - self.t)
        self.t = c.t_env
        post = {"return": f"{recent_return:.2f}"}
        if "test_return_mean" in last_test:
            post["test_ret"] = f"{last_test['test_return_mean']:.2f}"
        if "test_battle_won_mean" in last_test:
            post["test_win"] = f"{last_test['test_battle_won_mean']:.2f}"
        self.bar.set_postfix(post, refresh=False)

    def line(self, t_env: int, record: dict, last_test: dict) -> None:
        """One line per log record where there is no bar: where the run is, how it does, how
        fast it goes and when it will be done."""
        if not self.lines:
            return
        t0, w0 = self.since
        now = time.time()
        speed = (t_env - t0) / max(now - w0, 1e-9)
        self.since = (t_env, now)
        parts = [f"t_env {t_env:,}/{self.t_max:,} ({t_env / self.t_max:.0%})"]
        if "return_mean" in record:
            parts.append(f"return {record['return_mean']:.3f}")
        if "test_return_mean" in last_test:
            parts.append(f"test return {last_test['test_return_mean']:.3f}")
        if "test_battle_won_mean" in last_test:
            parts.append(f"test win {last_test['test_battle_won_mean']:.2f}")
        parts.append(f"{speed:,.0f} steps/s")
        if t_env < self.t_max and speed > 0:
            parts.append(f"ETA {_duration((self.t_max - t_env) / speed)}")
        print("differ: " + "  ".join(parts), file=sys.stderr, flush=True)

    def close(self):
        self.bar.close()
