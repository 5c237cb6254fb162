"""Episode buffer: compact storage, padding on sample, incremental persistence."""

import numpy as np
import pytest

from differ.envs.base import DiscreteActions, EnvSpec
from differ.errors import CorruptCheckpoint
from differ.replay.episode_buffer import EpisodeBuffer, bytes_per_step, check_fits

SPEC = EnvSpec(
    n_agents=3,
    actions=DiscreteActions(6),
    obs_dim=4,
    state_dim=5,
    episode_limit=10,
    unit_type_ids=(0, 0, 1),
    unit_type_names=("a", "a", "b"),
)


def episode(rng, L, terminated=True):
    return dict(
        obs=rng.random((L + 1, 3, 4)),
        state=rng.random((L + 1, 5)),
        avail=rng.random((L + 1, 3, 6)) > 0.3,
        alive=rng.random((L + 1, 3)) > 0.2,
        actions=rng.integers(0, 6, (L, 3)),
        reward=rng.random(L),
        terminated=terminated,
    )


def test_storage_follows_lengths_and_dtypes():
    buf = EpisodeBuffer(SPEC, capacity=4, obs_dtype="float16")
    rng = np.random.default_rng(0)
    for L in (2, 3, 9):
        buf.add(**episode(rng, L))
    ep = buf.episodes[1]
    assert ep["obs"].dtype == np.float16 and ep["actions"].dtype == np.uint8 and ep["avail"].dtype == bool
    assert ep["obs"].shape == (4, 3, 4) and ep["actions"].shape == (3, 3)
    assert buf.nbytes() == (3 + 4 + 10) * bytes_per_step(SPEC, "float16") - 3 * (3 + 4)  # no action/reward row at L+1
    for L in (1, 1):
        buf.add(**episode(rng, L))
    assert len(buf) == 4 and buf.total_added == 5  # FIFO evicted the oldest


def test_sample_pads_to_longest_and_masks():
    buf = EpisodeBuffer(SPEC, capacity=10, obs_dtype="float32")
    rng = np.random.default_rng(1)
    eps = [episode(rng, 2, terminated=True), episode(rng, 5, terminated=False)]
    for e in eps:
        buf.add(**e)
    b = buf.collate(list(buf.episodes))
    assert b.max_t == 5 and b.obs.shape == (2, 6, 3, 4)
    np.testing.assert_array_equal(b.mask.numpy(), [[1, 1, 0, 0, 0], [1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(b.terminated.numpy(), [[0, 1, 0, 0, 0], [0, 0, 0, 0, 0]])
    np.testing.assert_allclose(b.obs[0, :3].numpy(), eps[0]["obs"], rtol=1e-6)
    assert (b.obs[0, 3:] == 0).all() and not b.avail[0, 3:].any()
    np.testing.assert_array_equal(b.actions[1].numpy(), eps[1]["actions"])


def test_persist_restore_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    buf = EpisodeBuffer(SPEC, capacity=5, obs_dtype="float16")
    for i in range(4):
        buf.add(**episode(rng, 1 + i))
    buf.persist(tmp_path)
    for i in range(4):  # evicts 3 of the persisted ones
        buf.add(**episode(rng, 2 + i))
    buf.persist(tmp_path)
    live_from = buf.total_added - len(buf)
    buf.prune(tmp_path, keep_from=live_from)
    restored = EpisodeBuffer(SPEC, capacity=5, obs_dtype="float16")
    restored.restore(tmp_path, live_from, buf.total_added)
    assert len(restored) == 5 and restored.total_added == 8
    for a, b in zip(buf.episodes, restored.episodes):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k])
    with pytest.raises(CorruptCheckpoint, match="incomplete"):
        EpisodeBuffer(SPEC, 5).restore(tmp_path, live_from, buf.total_added + 1)


def test_buffer_that_cannot_fit_fails_at_start():
    huge = EnvSpec(27, DiscreteActions(35), 738, 684, 101, (0,) * 27, ("marine",) * 27)
    with pytest.raises(MemoryError, match="GiB"):
        check_fits(huge, "float32", capacity=10**6)
    # a short run cannot fill it: the bound is what t_max can store, 2 rows per step at most
    check_fits(huge, "float32", capacity=10**6, total_steps=1000)
    with pytest.raises(MemoryError):
        check_fits(huge, "float32", capacity=10**6, total_steps=10**9)
