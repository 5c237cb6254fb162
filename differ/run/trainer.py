"""The one run loop for every algorithm (docs/method.md §5, Algorithm 1).

collect a batch of E episodes -> store them -> train (steps per episode x E) -> update targets
every N episodes -> test / log / checkpoint on their intervals. Everything the future of the run
depends on is in the checkpoint, and every random draw comes from a checkpointed generator or
from a per-episode seed, so a resumed run continues exactly as the uninterrupted one would.
"""

from __future__ import annotations

import copy
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from shlex import quote

import numpy as np
import torch
from omegaconf import DictConfig

from ..acting.evaluation import evaluate_episodes
from ..acting.runner import Runner
from ..acting.schedules import TRAIN, episode_seeds, linear
from ..assemble import assemble, check_action_space, make_envs
from ..errors import ConfigError, TrainingDiverged
from ..interrupts import raise_if_interrupted
from ..replay.episode_buffer import EpisodeBuffer, check_fits
from ..replay.fair import uniform_draws_warning
from ..store import checkpoint as ckpt
from ..store.metrics import Accumulator, MetricsLogger
from .checkpointing import Checkpointing
from .counters import Counters
from .progress import Progress
from .threads import idle_threads, usable_cores
from .timing import PhaseClock


class Trainer(Checkpointing):
    def __init__(self, cfg: DictConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, run_dir
        # torch_threads=0: one thread per core the rest of the machine leaves idle now, fixed for
        # the run and saved in its config (differ/run/threads.py); overlap runs two busy threads of
        # its own, so there it means one torch thread
        if not cfg.torch_threads:
            cfg.torch_threads = 1 if cfg.overlap else idle_threads()
        elif cfg.torch_threads > usable_cores():  # e.g. a run resumed on a smaller machine
            ckpt.warn(
                f"torch_threads={cfg.torch_threads} is more than this machine's {usable_cores()} cores, which "
                f"slows the run down; resume with torch_threads={usable_cores()} (its numbers then differ in the "
                f"last digits)"
            )
        torch.set_num_threads(cfg.torch_threads)
        self.env, self.test_env = make_envs(cfg)
        raise_if_interrupted()  # a Ctrl-C while the env family imported and built
        spec = self.spec = self.env.spec
        check_action_space(cfg, spec)
        # the last batch may run past t_max by up to one episode per env
        check_fits(
            spec,
            cfg.algo.obs_dtype,
            cfg.algo.buffer_size,
            total_steps=cfg.t_max + self.env.num_envs * spec.episode_limit,
        )
        self.learner = assemble(cfg, spec)
        # an on-policy learner (COMA) trains once per algo.batch_size episodes, on exactly those
        self.on_policy = getattr(self.learner, "on_policy", False)
        if self.on_policy and cfg.overlap:
            raise ConfigError(f"overlap=true acts one batch behind the learner, and algo={cfg.algo.name} is on-policy")
        self.controller = self.learner.controller()
        self.clock = PhaseClock()  # where the time goes (result.json's time_s)
        self.runner = Runner(self.env, self.controller)
        self.test_runner = self.runner if self.test_env is self.env else Runner(self.test_env, self.controller)
        self.buffer = EpisodeBuffer(spec, cfg.algo.buffer_size, cfg.algo.obs_dtype)
        self.rng = np.random.default_rng(cfg.seed)
        if cfg.overlap:  # the collecting thread acts with its own copy of the agent and its own generator
            self.acting = self.learner.controller(copy.deepcopy(self.learner.agent).requires_grad_(False))
            self.acting_runner = Runner(self.env, self.acting)
            self.acting_rng = np.random.default_rng([cfg.seed, 1])
        self.c = Counters(last_test_t=-cfg.test_interval)
        self.acc_env, self.acc_train = Accumulator(), Accumulator()
        self.last_test: dict[str, float] = {}
        self.logger: MetricsLogger | None = None
        self.progress: Progress | None = None  # set while train() runs
        self.last_checkpoint: Path | None = None  # the newest checkpoint known good (saved or resumed from)
        # first live episode of the newest checkpoint and of the one before it: chunks from there on stay
        self._last_live_from = self._prev_live_from = 0
        self.run_id: str | None = None  # set by start_new or resume
        self._given: frozenset[str] = frozenset()  # on resume: the config keys the command line set
        self._meta_from = 0  # the first episode id whose chunk records the run id (older runs: later)
        self._stop = False

    # ---- the loop --------------------------------------------------------------------------
    def _request_stop(self, signum, frame):
        if self._stop:  # second Ctrl-C: stop now
            raise KeyboardInterrupt
        self._stop = True

    def train(self) -> dict:
        cfg, c, a = self.cfg, self.c, self.cfg.algo
        E = self.env.num_envs
        # a graceful stop on Ctrl-C / SIGTERM; Python lets only the main thread install handlers
        # (differ.train inside a thread, e.g. a tuner's trial, stops only with its process)
        main = threading.current_thread() is threading.main_thread()
        raise_if_interrupted()  # a Ctrl-C during start-up that Python lost on the way
        handlers = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        progress = self.progress = Progress(cfg, c.t_env, self.run_dir, resumed=c.t_env > 0)
        worst = a.batch_size * self.spec.episode_limit  # steps until the first batch, at the longest episodes
        if c.train_steps == 0 and worst > cfg.t_max:
            ckpt.warn(
                f"this run may never train: its first training step needs algo.batch_size={a.batch_size} "
                f"episodes in the buffer, up to {worst:,} env steps at {self.spec.episode_limit} steps an "
                f"episode, more than t_max={cfg.t_max:,}"
            )
        t_start = time.time()
        wall_before = c.wall_time
        completed = False
        collector = ThreadPoolExecutor(1, thread_name_prefix="differ-collect") if cfg.overlap else None
        try:
            while c.t_env < cfg.t_max and not self._stop:
                epsilon = linear(a.epsilon_start, a.epsilon_finish, a.epsilon_anneal_steps, c.t_env)
                seeds = episode_seeds(cfg.seed, TRAIN, c.episode, E)
                if collector is None:
                    episodes = self.runner.run(seeds, epsilon, self.rng, clock=self.clock)
                    self._store(episodes, epsilon)
                    self._learn()
                else:
                    # overlap: the next batch is collected (by a snapshot of the agent network, with
                    # its own generator) while the learner trains on what the buffer holds
                    self.acting.agent.load_state_dict(self.learner.agent.state_dict())
                    pending = collector.submit(
                        self.acting_runner.run, seeds, epsilon, self.acting_rng, clock=self.clock
                    )
                    self._learn()
                    episodes = pending.result()
                    self._store(episodes, epsilon)
                c.wall_time = wall_before + time.time() - t_start
                self._periodic(final=False)
                progress.update(c, self.last_test, sum(ep.ret for ep in episodes) / E)
            if c.t_env >= cfg.t_max:
                self._periodic(final=True)
            else:
                # stopped by a signal between two batches: checkpoint the state as it is, with no
                # extra test or log row, so a resumed run logs exactly what an uninterrupted one does
                self.save_checkpoint(periodic=False)
            completed = True
        finally:
            if collector is not None:
                collector.shutdown(wait=True, cancel_futures=True)
            for s, h in handlers.items():
                signal.signal(s, h)
            progress.close()
            self.logger.close(quiet=not completed)  # an error on the way out is the one to report
        result = {
            "t_env": c.t_env,
            "stopped_early": c.t_env < cfg.t_max,
            "wall_time_s": round(c.wall_time, 1),
            "train_steps": c.train_steps,
            **self.last_test,
        }
        result["time_s"] = self.clock.split(c.t_env, c.wall_time)
        if c.fair_warning:
            result["fair_replay_warning"] = c.fair_warning
        if c.train_steps == 0 and c.t_env >= cfg.t_max:
            result["warning"] = (
                f"no training step was taken: the buffer never held algo.batch_size="
                f"{a.batch_size} episodes before t_max; raise t_max or lower algo.batch_size"
            )
            ckpt.warn(result["warning"])
        return result

    def _store(self, episodes: list, epsilon: float) -> None:
        """A collected batch into the buffer and the counters; it earns its training steps."""
        c, a = self.c, self.cfg.algo
        with self.clock.phase("store"):
            for ep in episodes:
                self.buffer.add_episode(ep)
        for ep in episodes:
            self.acc_env.add({"return": ep.ret, "ep_length": ep.length, **ep.stats})
        c.t_env += sum(ep.length for ep in episodes)
        c.episode += len(episodes)
        self.acc_env.add({"epsilon": epsilon})
        if len(self.buffer) >= a.batch_size or self.on_policy:
            c.train_credit += len(episodes) * a.train_steps_per_episode

    def _learn(self) -> None:
        """The training steps earned so far, and the target networks' update when it is due."""
        c, a = self.c, self.cfg.algo
        while c.train_credit >= 1:
            c.train_credit -= 1
            self.acc_train.add(self._train_step())
            c.train_steps += 1
            if a.target_tau is not None:
                with self.clock.phase("targets"):
                    self.learner.soft_update_targets(a.target_tau)
        if a.target_tau is None and c.episode - c.last_target_update_episode >= a.target_update_episodes:
            with self.clock.phase("targets"):
                self.learner.update_targets()
            c.last_target_update_episode = c.episode

    def _train_step(self) -> dict[str, float]:
        c = self.c
        try:
            with self.clock.phase("sample"):
                n, dtype = self.cfg.algo.batch_size, self.learner.batch_obs_dtype
                if self.on_policy:  # the newest episodes, in order
                    batch = self.buffer.collate(list(self.buffer.episodes)[-n:], dtype)
                else:
                    batch = self.buffer.sample(n, self.rng, dtype)
                batch = batch.to(self.learner.device)
            with self.clock.phase("learn"):
                stats = self.learner.train(batch, c.t_env)
            bad = [k for k, v in stats.items() if k.startswith("loss") and not np.isfinite(v)]
            if bad:
                raise TrainingDiverged(f"{bad[0]} became {stats[bad[0]]}")
        except TrainingDiverged as e:
            raise self._diverged(str(e)) from None
        return stats

    def _diverged(self, what: str) -> TrainingDiverged:
        c = self.c
        if self.last_checkpoint is None:
            then = (
                f"no checkpoint was saved yet; start again with a lower learning rate "
                f"(e.g. algo.lr={self.cfg.algo.lr / 10:g}) in a new run_dir"
            )
        else:
            then = (
                f"the last good checkpoint is {self.last_checkpoint}. Resume from it with a lower learning "
                f"rate, e.g. `differ train resume={quote(str(self.run_dir))} algo.lr={self.cfg.algo.lr / 10:g}`"
            )
        return TrainingDiverged(
            f"training diverged: {what} at t_env={c.t_env} (training step "
            f"{c.train_steps}); {then} (or a lower algo.grad_clip), or check the "
            f"environment's rewards"
        )

    def _watch_fair_replay(self, record: dict) -> None:
        """Once ε has annealed, warn (once per run) when fair replay draws near uniformly."""
        c = self.c
        if c.fair_warning or c.t_env < self.cfg.algo.epsilon_anneal_steps:
            return
        c.fair_uniform_logs, c.fair_warning = uniform_draws_warning(record, c.fair_uniform_logs, c.t_env)
        if c.fair_warning:
            ckpt.warn(c.fair_warning)

    def _periodic(self, final: bool) -> None:
        """Test, log and checkpoint on their schedules; at t_max (final) all three, once."""
        cfg, c = self.cfg, self.c
        if final or c.due(c.last_test_t, cfg.test_interval):
            if not final or c.last_test_t != c.t_env:
                first = c.test_round * cfg.test_episodes
                episodes: dict[str, list] = {}
                with self.clock.phase("test"):
                    self.last_test = evaluate_episodes(
                        self.test_runner, cfg.seed, first, cfg.test_episodes, per_episode=episodes
                    )
                c.test_round += 1
                c.last_test_t = c.t_env
                with self.clock.phase("log"):
                    self.logger.log(c.t_env, self.last_test)
                    self.logger.log_episodes(c.t_env, episodes)
        if final or c.due(c.last_log_t, cfg.log_interval):
            if self.acc_env.counts or self.acc_train.counts:
                record = {
                    **self.acc_env.means(raw=("epsilon",)),
                    **self.acc_train.means(
                        suffix="",
                    ),
                }
                record.update(
                    episode=c.episode,
                    train_steps=c.train_steps,
                    steps_per_s=c.t_env / max(c.wall_time, 1e-9),
                )
                with self.clock.phase("log"):
                    self.logger.log(c.t_env, record)
                self._watch_fair_replay(record)
                if self.progress is not None:
                    self.progress.line(c.t_env, record, self.last_test)
                self.acc_env.clear()
                self.acc_train.clear()
            c.last_log_t = c.t_env
        if final or c.due(c.last_ckpt_t, cfg.checkpoint_interval):
            with self.clock.phase("checkpoint"):
                self.save_checkpoint()
