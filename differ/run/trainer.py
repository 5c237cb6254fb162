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
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from ..acting.record import policy_record
from ..acting.runner import Runner
from ..acting.schedules import TEST, TRAIN, episode_seeds, linear
from ..assemble import assemble, check_action_space, make_envs
from ..errors import CheckpointError, CorruptCheckpoint, TrainingDiverged
from ..replay.episode_buffer import EpisodeBuffer, check_fits
from ..store import checkpoint as ckpt
from ..store.metrics import Accumulator, MetricsLogger
from ..store.rundir import RunDir
from .counters import Counters
from .progress import Progress
from .threads import idle_threads, usable_cores
from .timing import PhaseClock

NEAR_UNIFORM = 0.13  # fair_top10_share below this counts as near uniform (uniform: 0.10)
UNIFORM_LOGS = 3  # log intervals in a row, after the ε anneal, before the health check warns


def evaluate_episodes(
    runner: Runner, seed: int, first: int, episodes: int, keep: list | None = None, per_episode: dict | None = None
) -> dict[str, float]:
    """Greedy test episodes with seeds from the test stream; returns test_* means.
    With `keep`, the episodes themselves are appended to it; with `per_episode`, each one's
    return, length and outcomes (spec.episode_stats: battle_won) are appended to its lists."""
    E = runner.env.num_envs
    acc = Accumulator()
    done = 0
    rng = np.random.default_rng(0)  # greedy discrete selection ignores it; CEM draws its samples from it
    while done < episodes:
        eps = runner.run(episode_seeds(seed, TEST, first + done, E), 0.0, rng, greedy=True)
        for ep in eps[: episodes - done]:
            values = {"return": ep.ret, "ep_length": ep.length, **ep.stats}
            acc.add(values)
            if per_episode is not None:
                for k, v in values.items():
                    if v is not None:
                        per_episode.setdefault(k, []).append(v)
            if keep is not None:
                keep.append(ep)
        done += E
    return {"test_" + k: v for k, v in acc.means().items()}


class Trainer:
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
        self._stop = False

    def start_new(self) -> None:
        """A fresh run in a directory without checkpoints: anything a start killed before its
        first checkpoint left there (metrics, TensorBoard events, replay chunks) goes."""
        import shutil

        files = RunDir(self.run_dir)
        for path in (files.metrics, files.evals, files.result_file, files.wandb_id):
            path.unlink(missing_ok=True)
        for d in (ckpt.replay_dir(self.run_dir), files.tensorboard, files.wandb):
            shutil.rmtree(d, ignore_errors=True)
        ckpt.remove_stale_tmp(self.run_dir)
        self.logger = MetricsLogger(self.run_dir, self.cfg.tensorboard, sink=self._wandb(resumed=False))

    def _wandb(self, resumed: bool):
        if not self.cfg.wandb:
            return None
        from .wandb_sink import WandbSink

        return WandbSink(self.cfg, self.run_dir, resumed)

    def resume(self) -> Path:
        """Restore the newest checkpoint whose files are all readable; a damaged one (empty,
        truncated, unreadable, or with a bad replay chunk) is reported and the one before it is
        tried. Returns the checkpoint resumed from. Files are only cleaned up once it succeeded."""
        damaged: list[str] = []

        def bad(msg: str) -> None:
            damaged.append(msg)
            ckpt.warn(f"{msg}; trying the checkpoint before it")

        for path, payload in ckpt.readable_newest_first(self.run_dir, on_bad=bad):
            try:
                self._restore(payload)
            except CorruptCheckpoint as e:
                bad(f"{e}: cannot resume from {path}")
                continue
            except (KeyError, TypeError, IndexError) as e:  # readable, but not all a checkpoint holds
                bad(f"checkpoint {path} is incomplete ({type(e).__name__}: {e})")
                continue
            if damaged:
                ckpt.warn(f"resuming from {path}, the newest checkpoint that is intact")
            self.last_checkpoint = path
            ckpt.remove_stale_tmp(self.run_dir)
            self.buffer.drop_from(ckpt.replay_dir(self.run_dir), self.buffer.total_added)
            self.logger = MetricsLogger(
                self.run_dir, self.cfg.tensorboard, resume_t_env=self.c.t_env, sink=self._wandb(resumed=True)
            )
            return path
        raise CheckpointError(
            f"no checkpoint in {ckpt.checkpoint_dir(self.run_dir)} can be resumed "
            f"(the oldest: {damaged[-1]}); the run cannot be continued: start a new one"
        )

    # ---- checkpoint ----------------------------------------------------------------------
    def payload(self) -> dict:
        return {
            "format": 1,
            "config": OmegaConf.to_container(self.cfg),
            "counters": asdict(self.c),
            "learner": self.learner.state_dict(),
            "rng": {
                "numpy": self.rng.bit_generator.state,
                "torch": torch.get_rng_state(),
                **({"acting": self.acting_rng.bit_generator.state} if self.cfg.overlap else {}),
            },
            "accumulators": {"env": self.acc_env.state_dict(), "train": self.acc_train.state_dict()},
            "last_test": dict(self.last_test),
            "buffer": {"live_from": self.buffer.total_added - len(self.buffer), "total_added": self.buffer.total_added},
            "spec": self._shapes(),
            "policy": policy_record(self.spec, self.cfg.algo),  # for differ.Policy
            "timing": dict(self.clock.seconds),
        }

    def _shapes(self) -> dict:
        s = self.spec
        return {"n_agents": s.n_agents, "n_actions": s.n_actions, "obs_dim": s.obs_dim, "state_dim": s.state_dim}

    def save_checkpoint(self, periodic: bool = True) -> Path:
        """Save everything the rest of the run depends on. A periodic checkpoint moves the
        checkpoint schedule (and records the moved schedule); the one a stop (Ctrl-C, SIGTERM)
        writes does not, so the resumed run checkpoints and logs where the uninterrupted one does."""
        if not self.learner.all_finite():
            raise self._diverged("the networks hold non-finite values (not saved)")
        replay_dir = ckpt.replay_dir(self.run_dir)
        self.buffer.persist(replay_dir)  # chunks first: the checkpoint must only name files on disk
        if periodic:
            self.c.last_ckpt_t = self.c.t_env
        path = ckpt.save(self.run_dir, self.c.t_env, self.payload())
        live_from = self.buffer.total_added - len(self.buffer)
        if path != self.last_checkpoint:  # (the final save may rewrite the periodic one of its batch)
            self._prev_live_from = self._last_live_from
        self._last_live_from = live_from
        # keep the chunks the previous checkpoint needs as well: if this one turns out damaged,
        # resume falls back to that one
        self.buffer.prune(replay_dir, keep_from=min(live_from, self._prev_live_from))
        self.last_checkpoint = path
        return path

    def _restore(self, p: dict) -> None:
        """Load a checkpoint's payload into this trainer. Every piece of state is overwritten, so
        a failed attempt leaves nothing behind that a second attempt (an older checkpoint) keeps."""
        now = self._shapes()
        if p["spec"] != now:
            raise CheckpointError(
                f"the checkpoint was made for env shapes {p['spec']}, but the environment now gives {now} "
                f"(a different package version or scenario?); start a new run instead"
            )
        b = p["buffer"]
        replay = ckpt.replay_dir(self.run_dir)
        if b["total_added"] > b["live_from"] and not replay.is_dir():
            raise CheckpointError(
                f"{replay} is gone: a sweep deletes a finished run's replay buffer unless keep_replay=true, "
                f"and without it the run cannot be continued exactly; start a new run with the larger t_max "
                f"(or sweep with keep_replay=true next time)"
            )
        self.buffer.restore(replay, b["live_from"], b["total_added"])
        self._last_live_from = self._prev_live_from = b["live_from"]
        self.c = self.c.restored(p["counters"])
        try:
            self.learner.load_state_dict(p["learner"])
        except (RuntimeError, KeyError, ValueError) as e:
            raise CheckpointError(
                f"the checkpoint's networks do not fit the ones built from the config "
                f"({type(e).__name__}: {(str(e).splitlines() or [''])[0][:120]}); "
                f"was config.yaml edited? start a new run instead"
            ) from None
        self.rng.bit_generator.state = p["rng"]["numpy"]
        if self.cfg.overlap:
            self.acting_rng.bit_generator.state = p["rng"]["acting"]
        torch.set_rng_state(p["rng"]["torch"])
        self.acc_env = Accumulator(p["accumulators"]["env"])
        self.acc_train = Accumulator(p["accumulators"]["train"])
        self.last_test = dict(p["last_test"])
        self.clock = PhaseClock(p.get("timing"))  # (checkpoints before differ 0.3 have none)

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
        if len(self.buffer) >= a.batch_size:
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
                batch = self.buffer.sample(self.cfg.algo.batch_size, self.rng, self.learner.batch_obs_dtype).to(
                    self.learner.device
                )
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
                f"rate, e.g. `differ train resume={self.run_dir} algo.lr={self.cfg.algo.lr / 10:g}`"
            )
        return TrainingDiverged(
            f"training diverged: {what} at t_env={c.t_env} (training step "
            f"{c.train_steps}); {then} (or a lower algo.grad_clip), or check the "
            f"environment's rewards"
        )

    def _watch_fair_replay(self, record: dict) -> None:
        """Once ε has annealed, warn (once per run) when fair replay has drawn near uniformly for
        UNIFORM_LOGS log intervals in a row: it then tests random subsampling, not priorities."""
        c, share = self.c, record.get("fair_top10_share")
        if share is None or c.fair_warning or c.t_env < self.cfg.algo.epsilon_anneal_steps:
            return
        c.fair_uniform_logs = c.fair_uniform_logs + 1 if share < NEAR_UNIFORM else 0
        if c.fair_uniform_logs >= UNIFORM_LOGS:
            c.fair_warning = (
                f"fair replay is drawing almost uniformly (t_env={c.t_env:,}): the 10% of individual "
                f"experiences with the largest |δ_i| got less than {NEAR_UNIFORM} of the draws (uniform: 0.10) "
                f"in each of the last {UNIFORM_LOGS} log intervals (last: {share:.3f}), and mean |δ_i| is "
                f"{record.get('td_ind_over_eps', 0):.3g} x algo.differ.per_eps; to prioritise, raise "
                f"env.reward_scale or lower algo.differ.per_eps"
            )
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
