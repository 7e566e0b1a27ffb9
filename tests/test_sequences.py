"""The sequence mechanism on hand-computed cases."""

import numpy as np
import pytest
import torch as th

from sb3_recurrent_ext import cut_sequences, make_sequences


def _starts(n_steps: int, n_envs: int, starts: list[tuple[int, int]]) -> np.ndarray:
    episode_starts = np.zeros((n_steps, n_envs), dtype=bool)
    for step, env in starts:
        episode_starts[step, env] = True
    return episode_starts


def test_one_env_episode_ends_mid_chunk():
    # steps 0..5 of one env; a new episode starts at step 2; seq_len 4
    # sequences: [0, 1] (episode end), [2, 3, 4, 5]
    seqs = make_sequences(_starts(6, 1, [(2, 0)]), seq_len=4)
    np.testing.assert_array_equal(seqs.index, [[0, 1, 0, 0], [2, 3, 4, 5]])
    np.testing.assert_array_equal(seqs.mask, [[1, 1, 0, 0], [1, 1, 1, 1]])
    np.testing.assert_array_equal(seqs.start_index, [0, 2])
    np.testing.assert_array_equal(seqs.starts_episode, [False, True])
    np.testing.assert_array_equal(seqs.lengths, [2, 4])


def test_several_episodes_in_one_chunk_and_short_tail():
    # one env, 10 steps, episodes start at 0, 3, 4; seq_len 3
    # [0,1,2] [3] [4,5,6] [7,8,9]; then with 11 steps a tail [10]
    seqs = make_sequences(_starts(11, 1, [(0, 0), (3, 0), (4, 0)]), seq_len=3)
    np.testing.assert_array_equal(seqs.index, [[0, 1, 2], [3, 3, 3], [4, 5, 6], [7, 8, 9], [10, 10, 10]])
    np.testing.assert_array_equal(seqs.lengths, [3, 1, 3, 3, 1])
    np.testing.assert_array_equal(seqs.start_index, [0, 3, 4, 7, 10])
    np.testing.assert_array_equal(seqs.starts_episode, [True, True, True, False, False])


def test_many_envs_never_cross_env_boundary():
    # 5 steps, 3 envs, time-major flat index = step * 3 + env; env 1 restarts at step 3, env 2 at step 1
    seqs = make_sequences(_starts(5, 3, [(3, 1), (1, 2)]), seq_len=2)
    expected_index = [
        [0, 3], [6, 9], [12, 12],      # env 0: steps 0-1, 2-3, 4
        [1, 4], [7, 7], [10, 13],      # env 1: steps 0-1, 2 (episode ends), 3-4
        [2, 2], [5, 8], [11, 14],      # env 2: step 0 (episode ends), 1-2, 3-4
    ]  # fmt: skip
    np.testing.assert_array_equal(seqs.index, expected_index)
    np.testing.assert_array_equal(seqs.lengths, [2, 2, 1, 2, 1, 2, 1, 2, 2])
    np.testing.assert_array_equal(seqs.start_index, [0, 6, 12, 1, 7, 10, 2, 5, 11])
    np.testing.assert_array_equal(seqs.starts_episode, [False, False, False, False, False, True, False, True, False])
    # every real step appears exactly once
    assert sorted(seqs.index[seqs.mask].tolist()) == list(range(15))
    # no sequence mixes envs: flat index % n_envs is constant along each sequence
    envs = seqs.index % 3
    assert (envs == envs[:, :1]).all()


def test_pad_time_major_and_flat_data_torch_and_numpy():
    episode_starts = _starts(4, 2, [(2, 0)])
    # data[t, e] = 10 * t + e, with a trailing feature axis of size 2
    data = np.stack([np.add.outer(10 * np.arange(4), np.arange(2))] * 2, axis=-1).astype(np.float32)
    padded, mask, start_index = cut_sequences(data, episode_starts, seq_len=3)
    assert padded.shape == (4, 3, 2)
    np.testing.assert_array_equal(padded[..., 0], [[0, 10, 0], [20, 30, 0], [1, 11, 21], [31, 0, 0]])
    np.testing.assert_array_equal(mask, [[1, 1, 0], [1, 1, 0], [1, 1, 1], [1, 0, 0]])
    np.testing.assert_array_equal(start_index, [0, 4, 1, 7])

    seqs = make_sequences(th.as_tensor(episode_starts), seq_len=3)
    flat = th.as_tensor(data).reshape(8, 2)
    padded_torch = seqs.pad(flat)
    assert isinstance(padded_torch, th.Tensor)
    np.testing.assert_array_equal(padded_torch.numpy(), padded)
    # padding is zero even where the gathered index is a real step
    assert (padded_torch[~th.as_tensor(seqs.mask)] == 0).all()


def test_one_env_time_major_scalar_data():
    seqs = make_sequences(_starts(3, 1, []), seq_len=2)
    padded = seqs.pad(np.array([[1.0], [2.0], [3.0]]))
    np.testing.assert_array_equal(padded, [[1.0, 2.0], [3.0, 0.0]])


@pytest.mark.parametrize("seq_len", [0, -1, 1.5, True])
def test_bad_seq_len(seq_len):
    with pytest.raises(ValueError, match="seq_len"):
        make_sequences(np.zeros((3, 1), dtype=bool), seq_len=seq_len)


def test_bad_data_shape():
    seqs = make_sequences(np.zeros((3, 2), dtype=bool), seq_len=2)
    with pytest.raises(ValueError, match="matches neither"):
        seqs.pad(np.zeros((5, 2)))
