"""A run's checkpoints, as the trainer writes and reads them: what a checkpoint holds (`payload`),
saving it after the replay chunks it names, and resuming from the newest intact one (falling back
to the one before a damaged checkpoint). Every piece of state is overwritten on restore, so a
failed attempt leaves nothing that a second one keeps.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import torch
from omegaconf import OmegaConf

from ..acting.record import policy_record
from ..config import RESUME_KEYS, migrate
from ..errors import CheckpointError, ConfigError, CorruptCheckpoint
from ..store import checkpoint as ckpt
from ..store.metrics import Accumulator, MetricsLogger, rows_up_to
from ..store.rundir import RunDir, package_versions
from .timing import PhaseClock


class Checkpointing:
    """The trainer's checkpointing half (the trainer owns the state it names)."""

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
        self.run_id = ckpt.new_run_id()
        ckpt.write_atomic(files.run_id, self.run_id.encode())
        self.logger = MetricsLogger(self.run_dir, self.cfg.tensorboard, sink=self._wandb(resumed=False))

    def _wandb(self, resumed: bool):
        if not self.cfg.wandb:
            return None
        from .wandb_sink import WandbSink

        return WandbSink(self.cfg, self.run_dir, resumed)

    def resume(self, given: frozenset[str] = frozenset()) -> Path:
        """Restore the newest checkpoint whose files are all readable; a damaged one (empty,
        truncated, unreadable, or with a bad replay chunk) is reported and the one before it is
        tried. Returns the checkpoint resumed from. Files are only cleaned up once it succeeded.
        `given`: the config keys set on the command line (the rest come from config.yaml)."""
        self._given = given
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
            _warn_package_changes(payload.get("packages"), package_versions(self.cfg.env.name))
            ckpt.check_room_to_resume(self.run_dir, path)  # the first change to the directory follows
            self.last_checkpoint = path
            ckpt.remove_stale_tmp(self.run_dir)
            if self.run_id is None:  # a run started before differ recorded run ids: it gets one now
                self.run_id = ckpt.new_run_id()
            if ckpt.read_run_id(self.run_dir) != self.run_id:
                ckpt.write_atomic(RunDir(self.run_dir).run_id, self.run_id.encode())
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
            "run_id": self.run_id,
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
            "buffer": {
                "live_from": self.buffer.total_added - len(self.buffer),
                "total_added": self.buffer.total_added,
                "meta_from": self._meta_from,  # every chunk from this episode id on records the run's id
            },
            "spec": self._shapes(),
            "policy": policy_record(self.spec, self.cfg.algo),  # for differ.Policy
            "timing": dict(self.clock.seconds),
            "metrics": {"rows": self.logger.rows},  # metrics.jsonl's rows so far
            "packages": package_versions(self.cfg.env.name),
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
        self.buffer.persist(replay_dir, self.run_id)  # chunks first: the checkpoint must only name files on disk
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
        self._check_config(p["config"])
        t_env, t_max = p["counters"]["t_env"], self.cfg.t_max
        metrics = RunDir(self.run_dir).metrics
        if "metrics" in p and rows_up_to(metrics, t_env) < p["metrics"]["rows"]:  # (older checkpoints: no record)
            raise CheckpointError(
                f"{metrics} holds {rows_up_to(metrics, t_env)} rows up to t_env={t_env}, but the checkpoint "
                f"recorded {p['metrics']['rows']}: it was deleted or cut short, and resuming would lose rows; "
                f"restore it (from a backup), or start a new run in another run_dir"
            )
        if t_max < t_env and t_max < p["config"]["t_max"]:  # (a finished run may end past its own t_max)
            raise ConfigError(
                f"t_max={t_max} is below the step the run has reached (t_env={t_env}): a resume continues a run, "
                f"it cannot shorten it; give t_max above {t_env}, or leave t_max out"
            )
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
        # a checkpoint written before run ids were recorded names chunks without one, up to its end
        self.run_id = p.get("run_id")
        self._meta_from = b.get("meta_from", b["total_added"])
        self.buffer.restore(replay, b["live_from"], b["total_added"], self.run_id, self._meta_from)
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

    def _check_config(self, saved: dict) -> None:
        """The run's config (config.yaml and the command line's keys) against the one the
        checkpoint was trained with: a key that no resume may change differs only where
        config.yaml was edited by hand, and is refused; one that a resume may change, but that the
        command line did not give, is reported (a resume's override, or an edit)."""
        old = _flat(OmegaConf.to_container(migrate(OmegaConf.create(saved))))
        now = _flat(OmegaConf.to_container(self.cfg))
        for key in old.keys() & now.keys():  # (a key added or removed by a newer differ: not compared)
            if old[key] == now[key] or key == "run_dir" or key in self._given:
                continue
            if key not in RESUME_KEYS:
                raise CheckpointError(
                    f"{RunDir(self.run_dir).config} sets {key}={now[key]!r}, but the run's checkpoints were "
                    f"trained with {key}={old[key]!r}: the file was edited by hand. Restore {key}: {old[key]!r} "
                    f"in it; a run cannot change {key} (start a new run in another run_dir for that)"
                )
            ckpt.warn(
                f"config.yaml sets {key}={now[key]!r}, the checkpoint was saved with {old[key]!r} (a resume "
                f"given {key}= or an edit of the file); going on with {now[key]!r}"
            )


def _warn_package_changes(then: dict | None, now: dict) -> None:
    """One line where the checkpoint was written under other package versions than these."""
    changed = [f"{pkg} {v} -> {now.get(pkg, 'not installed')}" for pkg, v in (then or {}).items() if now.get(pkg) != v]
    if changed:
        ckpt.warn(
            f"the checkpoint was written with other package versions ({', '.join(changed)}): the run goes on, "
            f"but no longer exactly as it would have gone on without the change"
        )


def _flat(tree: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out
