"""Checkpoints: one file per save, written atomically, loadable without executing code.

A checkpoint is a nested dict of tensors and plain Python values saved with `torch.save` and read
back with `torch.load(weights_only=True)`, which refuses anything that would run code. The replay
buffer is not inside it: its episodes are persisted incrementally as chunk files beside it
(`checkpoints/replay/`), and the checkpoint records which episode ids are live. The chunks of the
newest two checkpoints are kept, so a damaged newest checkpoint falls back to the one before.

Each checkpoint carries a sha256 digest of its contents (`DIGEST`), checked on every load: a file
changed after it was written (a flipped bit on disk, an edit) is damaged like a truncated one.
Checkpoints written before the digest existed load without the check. A checkpoint also records
the run it belongs to (`run_id`, the run directory's `run_id` file) and its step (the counters'
t_env, which its name repeats): another run's checkpoint copied or renamed into the directory is
damaged too, never resumed.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from shlex import quote

import numpy as np
import torch

from ..errors import CheckpointError, CorruptCheckpoint, StorageError
from .rundir import RunDir

_NAME = re.compile(r"ckpt_(\d+)\.pt$")
DIGEST = "sha256"  # the payload key of the digest of everything else in it


def digest(obj) -> str:
    """sha256 of a nested structure of tensors, arrays and plain values: of their types, shapes
    and bytes, so that any changed value (a flipped bit in a weight) changes it."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)};".encode())
        h.update(t.view(torch.uint8).numpy())
    elif isinstance(obj, np.ndarray):
        h.update(f"A{obj.dtype.str}{obj.shape};".encode())
        h.update(np.ascontiguousarray(obj).reshape(-1).view(np.uint8))
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)};".encode())
        for k, v in obj.items():
            _feed(h, k)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'L' if isinstance(obj, list) else 'U'}{len(obj)};".encode())
        for v in obj:
            _feed(h, v)
    elif isinstance(obj, float):
        h.update(f"F{obj.hex()};".encode())
    elif isinstance(obj, (bytes, bytearray)):
        h.update(f"B{len(obj)};".encode())
        h.update(obj)
    else:  # None, bool, int, str (and anything else by its repr)
        r = repr(obj).encode()
        h.update(f"{type(obj).__name__}{len(r)};".encode())
        h.update(r)


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def replay_dir(run_dir: Path) -> Path:
    """Where the replay buffer's chunk files live, beside the checkpoints that name them."""
    return checkpoint_dir(run_dir) / "replay"


def new_run_id() -> str:
    return os.urandom(8).hex()


def read_run_id(run_dir: Path) -> str | None:
    """The run directory's run id, or None for a run started before differ recorded one."""
    try:
        return RunDir(run_dir).run_id.read_text().strip() or None
    except OSError:
        return None


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename: a reader sees the old file
    or the whole new one, never a part. A failed write (disk full) removes its temporary file
    and raises the OSError, so the caller can say so in one line."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def stale_tmp(run_dir: Path) -> list[Path]:
    """Temporary files of writes cut short by a kill (never renamed into place)."""
    run_dir = Path(run_dir)
    return [p for d in (run_dir, checkpoint_dir(run_dir), replay_dir(run_dir)) if d.is_dir() for p in d.glob("*.tmp")]


def remove_stale_tmp(run_dir: Path) -> None:
    for p in stale_tmp(run_dir):
        p.unlink(missing_ok=True)


def check_room_to_resume(run_dir: Path, newest: Path) -> None:
    """Before a resume changes anything: is there room for the next checkpoint (as large as the
    newest) and the replay chunk written with it (as large as the largest so far)? Without it the
    resume would cut metrics.jsonl back and start a TensorBoard file, then fail at its first
    checkpoint; refused here, it changes nothing."""
    import shutil

    run_dir = Path(run_dir)
    chunks = [p.stat().st_size for p in replay_dir(run_dir).glob("chunk_*.npz")]
    needed = newest.stat().st_size + max(chunks, default=0)
    # the stale temporary files are removed before anything is written
    free = shutil.disk_usage(run_dir).free + sum(p.stat().st_size for p in stale_tmp(run_dir))
    if free < needed:
        raise StorageError(
            f"cannot resume {run_dir}: {free / 2**20:.1f} MiB free on its disk, and its next checkpoint "
            f"needs about {needed / 2**20:.1f} MiB; free some space, then run the same command again "
            f"(nothing was changed)"
        )


def save(run_dir: Path, t_env: int, payload: dict) -> Path:
    d = checkpoint_dir(run_dir)
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"ckpt_{t_env:012d}.pt"
    payload = {**payload, DIGEST: digest({k: v for k, v in payload.items() if k != DIGEST})}
    buf = io.BytesIO()  # serialise in memory: a full disk then fails in one plain OSError
    torch.save(payload, buf)
    write_atomic(path, buf.getbuffer())
    return path


def list_checkpoints(run_dir: Path) -> list[Path]:
    d = checkpoint_dir(run_dir)
    found = [(int(m.group(1)), p) for p in d.glob("ckpt_*.pt") if (m := _NAME.search(p.name))]
    return [p for _, p in sorted(found)]


def t_env_of(path: Path) -> int:
    return int(_NAME.search(Path(path).name).group(1))


def latest(run_dir: Path) -> Path:
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(
            f"no checkpoint in {checkpoint_dir(run_dir)}: the run was stopped before its "
            f"first checkpoint (written every checkpoint_interval steps and at the end); "
            f"re-run the original `differ train ... run_dir={quote(str(run_dir))}` command to start it afresh"
        )
    return found[-1]


def load(path: Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.stat().st_size == 0:
        raise CorruptCheckpoint(f"checkpoint {path} is empty (0 bytes; a write cut short)")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or corrupt file, or one holding code
        first = (str(e).splitlines() or [""])[0].split(". ")[0][:120]
        raise CorruptCheckpoint(
            f"checkpoint {path} cannot be read ({type(e).__name__}: {first}); it is corrupt or not a differ checkpoint"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != 1:
        raise CorruptCheckpoint(f"{path} is not a differ checkpoint (format 1)")
    if DIGEST in payload:  # (checkpoints written before the digest existed have none)
        stored = payload.pop(DIGEST)
        if stored != digest(payload):
            raise CorruptCheckpoint(
                f"checkpoint {path} fails its integrity check (its contents changed after it was written: "
                f"a flipped bit on disk or an edit)"
            )
    return payload


def check_run(path: Path, payload: dict, run_id: str | None) -> None:
    """Refuse (as damaged) a checkpoint of a run directory that holds another step than its name
    says, or that belongs to another run than the one with `run_id`."""
    m, t_env = _NAME.search(path.name), payload.get("counters", {}).get("t_env")
    if m and t_env is not None and int(m.group(1)) != t_env:
        raise CorruptCheckpoint(
            f"checkpoint {path} holds step t_env={t_env}, not the one its name says: "
            f"it was renamed (another run's, or another step's)"
        )
    if run_id and payload.get("run_id") and payload["run_id"] != run_id:
        raise CorruptCheckpoint(
            f"checkpoint {path} belongs to another run (run id {payload['run_id']}, this run's is {run_id}): "
            f"it was copied in"
        )


def warn(msg: str) -> None:
    print(f"differ: warning: {msg}", file=sys.stderr, flush=True)


def _warn_and_go_on(msg: str) -> None:
    warn(f"{msg}; trying the checkpoint before it")


def readable_newest_first(
    run_dir: Path, on_bad: Callable[[str], None] = _warn_and_go_on
) -> Iterator[tuple[Path, dict]]:
    """(path, payload) of the run's checkpoints, newest first, skipping (and reporting) the ones
    that cannot be read. Nothing is deleted: a damaged file stays for the user to inspect."""
    found = list_checkpoints(run_dir)
    if not found:
        latest(run_dir)  # raises the "no checkpoint" error
    run_id = read_run_id(run_dir)
    for path in reversed(found):
        try:
            payload = load(path)
            check_run(path, payload, run_id)
        except CorruptCheckpoint as e:
            on_bad(str(e))
            continue
        yield path, payload


def load_newest(run_dir: Path, on_bad: Callable[[str], None] = _warn_and_go_on) -> tuple[Path, dict]:
    """The newest checkpoint that can be read (evaluation needs no replay buffer)."""
    for path, payload in readable_newest_first(run_dir, on_bad):
        return path, payload
    raise CheckpointError(
        f"no checkpoint in {checkpoint_dir(run_dir)} can be read (see the warnings above); "
        f"the run cannot be continued: start a new one"
    )


def load_run_or_file(path) -> tuple[Path, dict]:
    """(path, payload) of a run directory's newest readable checkpoint, or of a checkpoint file."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path} does not exist (expected a run directory or a checkpoint file)")
    return load_newest(path) if path.is_dir() else (path, load(path))
