"""FIFO buffer of whole episodes, stored compactly.

Each episode is kept at its true length (memory follows the steps actually played, not
capacity x episode limit), observations and states in float16 by default, booleans as bytes and
actions as small integers. Sampling pads a mini-batch to its longest episode.

Persistence is incremental: `persist` appends the episodes added since the last call as one
chunk file, and a checkpoint records only the range of live episode ids; chunks that fall out of
the FIFO window are deleted once a newer checkpoint no longer needs them. Each chunk holds, beside
its arrays, a `meta` record (JSON) with the sha256 digest of the arrays, the run's id and the
episode ids it holds, checked when it is read: a chunk changed after it was written, or another
run's (or another range's) copied in, is damaged like a truncated one.
"""

from __future__ import annotations

import io
import json
import re
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..envs.base import EnvSpec
from ..errors import CorruptCheckpoint
from ..store.checkpoint import digest, write_atomic
from .schema import EpisodeSchema


def bytes_per_step(spec: EnvSpec, obs_dtype: str) -> int:
    return EpisodeSchema(spec, obs_dtype).bytes_per_step()


def worst_case_bytes(spec: EnvSpec, obs_dtype: str, capacity: int) -> int:
    return capacity * (spec.episode_limit + 1) * bytes_per_step(spec, obs_dtype)


def available_memory() -> int:
    """Bytes the OS can still give us (MemAvailable), or a large number where unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def check_fits(
    spec: EnvSpec, obs_dtype: str, capacity: int, total_steps: int | None = None, fraction: float = 0.8
) -> None:
    """Fail at start, never mid-run: the buffer full of episodes at the limit must fit. A run that
    collects at most `total_steps` env steps never stores more than 2 x total_steps rows (each
    episode stores its length + 1 and lasts at least one step), whatever the capacity."""
    need, have = worst_case_bytes(spec, obs_dtype, capacity), available_memory()
    if total_steps is not None:
        need = min(need, 2 * total_steps * bytes_per_step(spec, obs_dtype))
    if need > fraction * have:
        raise MemoryError(
            f"a full replay buffer of {capacity} episodes needs up to {need / 2**30:.1f} GiB "
            f"({spec.episode_limit} steps each), but only {have / 2**30:.1f} GiB is available; "
            f"lower algo.buffer_size or keep algo.obs_dtype=float16"
        )


@dataclass
class Batch:
    """B episodes padded to the longest, T steps: the schema's fields (replay/schema.py, in its
    `batch` dtypes) plus where each episode ends. A field added to the schema is added here."""

    obs: torch.Tensor  # float32 [B, T+1, N, O] (bfloat16 where the learner asks: EpisodeBuffer.collate)
    state: torch.Tensor  # float32 [B, T+1, S]
    avail: torch.Tensor  # bool [B, T+1, N, A] (continuous actions: the dimensions each agent controls)
    alive: torch.Tensor  # bool [B, T+1, N]
    actions: torch.Tensor  # long [B, T, N] (continuous actions: float32 [B, T, N, A])
    reward: torch.Tensor  # float32 [B, T]
    terminated: torch.Tensor  # float32 [B, T]: 1 at the last step of a terminated episode
    mask: torch.Tensor  # float32 [B, T]: 1 on steps inside the episode

    @property
    def max_t(self) -> int:
        return self.actions.shape[1]

    def to(self, device: torch.device) -> Batch:
        """The batch on `device` (itself where it is there already)."""
        if self.obs.device == torch.device(device):
            return self
        return Batch(**{k: v.to(device, non_blocking=True) for k, v in self.__dict__.items()})


class _Mismatch(Exception):
    """A readable chunk that is not what its name and the checkpoint say."""


class EpisodeBuffer:
    def __init__(self, spec: EnvSpec, capacity: int, obs_dtype: str = "float16"):
        self.spec, self.capacity = spec, capacity
        self.schema = EpisodeSchema(spec, obs_dtype)
        self.episodes: deque[dict] = deque(maxlen=capacity)
        self.total_added = 0  # id of the next episode; live ids are [total_added - len, total_added)
        self._persisted_upto = 0

    def __len__(self) -> int:
        return len(self.episodes)

    def add_episode(self, e) -> None:
        """Store a runner's Episode."""
        self.add(e.terminated, **e.data)

    def add(self, terminated: bool, **fields: np.ndarray) -> None:
        """One episode of length L, its arrays by the schema's field names: the per-step fields
        (obs, state, avail, alive) have L + 1 rows, the per-transition ones (actions, reward) L."""
        ep = self.schema.stored(fields)
        ep["terminated"] = bool(terminated)
        self.episodes.append(ep)
        self.total_added += 1

    def nbytes(self) -> int:
        return sum(v.nbytes for ep in self.episodes for v in ep.values() if isinstance(v, np.ndarray))

    def sample(self, batch_size: int, rng: np.random.Generator, obs_dtype: torch.dtype = torch.float32) -> Batch:
        idx = rng.integers(0, len(self.episodes), size=batch_size)
        return self.collate([self.episodes[i] for i in idx], obs_dtype)

    def collate(self, eps: list[dict], obs_dtype: torch.dtype = torch.float32) -> Batch:
        """Pad `eps` into one batch. The observations come as `obs_dtype`: float32, or bfloat16 for
        a learner whose agent passes run in bfloat16; then they are padded in their storage dtype
        and cast once by torch (the same values as through float32, which float16 holds exactly,
        without writing and reading a float32 copy: at 27m_vs_30m that copy is 200 MB a step)."""
        B, T = len(eps), max(len(ep["reward"]) for ep in eps)
        out = self.schema.padded(B, T, stored=("obs",) if obs_dtype != torch.float32 else ())
        out["terminated"] = np.zeros((B, T), np.float32)
        out["mask"] = np.zeros((B, T), np.float32)
        for b, ep in enumerate(eps):
            L = len(ep["reward"])
            for k in self.schema.step_keys:
                out[k][b, : L + 1] = ep[k]  # float16 -> float32 happens in this copy
            for k in self.schema.transition_keys:
                out[k][b, :L] = ep[k]
            out["terminated"][b, L - 1] = ep["terminated"]
            out["mask"][b, :L] = 1.0
        batch = {k: torch.from_numpy(v) for k, v in out.items()}
        batch["obs"] = batch["obs"].to(obs_dtype)
        return Batch(**batch)

    # ---- incremental persistence -------------------------------------------------------
    _CHUNK = re.compile(r"chunk_(\d+)_(\d+)\.npz$")

    def persist(self, directory: Path, run_id: str | None = None) -> None:
        """Write the live episodes not yet on disk as one chunk file (atomic rename)."""
        directory.mkdir(parents=True, exist_ok=True)
        first_live = self.total_added - len(self.episodes)
        start = max(self._persisted_upto, first_live)
        if start >= self.total_added:
            return
        eps = list(self.episodes)[start - first_live :]
        arrays = {
            "lengths": np.array([len(ep["reward"]) for ep in eps], np.int64),
            "terminated": np.array([ep["terminated"] for ep in eps], bool),
        }
        for k in self.schema.step_keys + self.schema.transition_keys:
            arrays[k] = np.concatenate([ep[k] for ep in eps])
        path = directory / f"chunk_{start:09d}_{self.total_added:09d}.npz"
        meta = {
            "sha256": digest({k: arrays[k] for k in sorted(arrays)}),
            "run_id": run_id,
            "episodes": [start, self.total_added],
        }
        data = io.BytesIO()
        np.savez(data, **arrays, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8))
        write_atomic(path, data.getbuffer())
        self._persisted_upto = self.total_added

    def _chunks(self, directory: Path) -> list[tuple[int, int, Path]]:
        found = []
        for p in directory.glob("chunk_*.npz"):
            m = self._CHUNK.search(p.name)
            if m:
                found.append((int(m.group(1)), int(m.group(2)), p))
        return sorted(found)

    def prune(self, directory: Path, keep_from: int) -> None:
        """Delete chunk files whose episodes all precede id `keep_from`."""
        for _, end, p in self._chunks(directory):
            if end <= keep_from:
                p.unlink()

    def drop_from(self, directory: Path, first: int) -> None:
        """Delete chunk files holding episode ids >= `first`: written after the checkpoint a run
        resumes from (by a process killed before its next checkpoint, or by the timeline of a
        damaged newer checkpoint), they would otherwise shadow the episodes played from now on."""
        if directory.is_dir():
            for start, end, p in self._chunks(directory):
                if end > first:
                    if start < first:  # cannot happen with our naming; refuse to guess
                        raise CorruptCheckpoint(
                            f"replay chunk {p} straddles episode {first}, where the "
                            f"checkpoint ends; the replay files are inconsistent"
                        )
                    p.unlink()

    def restore(
        self, directory: Path, live_from: int, total_added: int, run_id: str | None = None, meta_from: int | None = None
    ) -> None:
        """Rebuild the buffer holding episode ids [live_from, total_added) from chunk files.
        A chunk that is missing, empty, truncated or corrupt raises CorruptCheckpoint, and so does
        one of another run than `run_id`, or one without its meta record from episode `meta_from`
        on (every chunk written since differ records one)."""
        self.episodes.clear()
        expected = live_from
        for start, end, path in self._chunks(directory):
            if end <= live_from or start >= total_added:
                continue
            if start > expected:
                break
            need_meta = meta_from is not None and start >= meta_from
            for ep_id, ep in zip(range(start, end), self._read_chunk(path, start, end, run_id, need_meta)):
                if live_from <= ep_id < total_added and ep_id >= expected:
                    self.episodes.append(ep)
                    expected = ep_id + 1
        if expected != total_added:
            raise CorruptCheckpoint(
                f"replay chunks in {directory} cover episodes up to {expected}, the checkpoint "
                f"needs up to {total_added}: the replay files are incomplete"
            )
        self.total_added = self._persisted_upto = total_added

    def _read_chunk(
        self, path: Path, start: int, end: int, run_id: str | None = None, need_meta: bool = False
    ) -> list[dict]:
        step_keys, transition_keys = self.schema.step_keys, self.schema.transition_keys
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            meta = json.loads(arrays.pop("meta").tobytes()) if "meta" in arrays else {}  # (older chunks: none)
            if "sha256" in meta and meta["sha256"] != digest({k: arrays[k] for k in sorted(arrays)}):
                raise _Mismatch("its contents changed after it was written (it fails its integrity check)")
            if need_meta and not meta:
                raise _Mismatch("it has no integrity record, which every chunk of this run has: it was copied in")
            if run_id and meta.get("run_id") and meta["run_id"] != run_id:
                raise _Mismatch(f"it belongs to another run (run id {meta['run_id']}, this run's is {run_id})")
            if "episodes" in meta and list(meta["episodes"]) != [start, end]:
                raise _Mismatch(f"it holds episodes {meta['episodes']}, not the ones its name says: it was renamed")
            lengths, term = arrays["lengths"], arrays["terminated"]
            data = {k: arrays[k] for k in step_keys + transition_keys}
            bad = self.schema.check(data, len(lengths), int(lengths.sum()))
            if bad or len(term) != len(lengths):
                raise ValueError(f"array {bad or 'terminated'} has the wrong shape")
        except _Mismatch as e:
            raise CorruptCheckpoint(f"replay chunk {path} cannot be used: {e}") from None
        except Exception as e:  # BadZipFile, EOFError, a bad CRC, a missing array, ...
            first = (str(e).splitlines() or [""])[0].split(". ")[0][:120]
            raise CorruptCheckpoint(f"replay chunk {path} cannot be read ({type(e).__name__}: {first})") from None
        eps, s_off, t_off = [], 0, 0
        for j, L in enumerate(lengths):
            ep = {k: data[k][s_off : s_off + L + 1] for k in step_keys}
            ep.update({k: data[k][t_off : t_off + L] for k in transition_keys})
            ep["terminated"] = bool(term[j])
            eps.append(ep)
            s_off += L + 1
            t_off += L
        return eps
