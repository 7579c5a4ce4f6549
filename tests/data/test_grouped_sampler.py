"""GroupedBatchSampler: aspect grouping, seeding, distributed shares, exact resume."""

from __future__ import annotations

from itertools import islice

import numpy as np
import pytest

from pydetectron.data import GroupedBatchSampler, InferenceSampler


def _ratios(num=37, seed=0):
    rng = np.random.default_rng(seed)
    return np.where(rng.random(num) < 0.6, rng.uniform(1.0, 2.0, num), rng.uniform(0.4, 0.99, num))


def _take(sampler, count):
    return [[tuple(k) for k in batch] for batch in islice(iter(sampler), count)]


def test_batches_hold_one_orientation_only():
    ratios = _ratios()
    sampler = GroupedBatchSampler(ratios, images_per_batch=4, num_scales=3, seed=1)
    for batch in _take(sampler, 40):
        landscape = [ratios[k[0]] >= 1 for k in batch]
        assert len(batch) == 4 and len(set(landscape)) == 1
        assert all(0 <= k[1] < 3 for k in batch)


def test_epoch_visits_each_image_at_most_once():
    ratios = _ratios()
    sampler = GroupedBatchSampler(ratios, images_per_batch=4, seed=2)
    per_epoch = len(sampler)
    landscape = int((ratios >= 1).sum())
    assert per_epoch == landscape // 4 + (len(ratios) - landscape) // 4
    for epoch in range(3):
        batches = _take(sampler, per_epoch * (epoch + 1))[epoch * per_epoch :]
        seen = [k[0] for b in batches for k in b]
        assert len(seen) == len(set(seen))  # no repeats within an epoch
        left_out = set(range(len(ratios))) - set(seen)
        assert sum(ratios[i] >= 1 for i in left_out) < 4
        assert sum(ratios[i] < 1 for i in left_out) < 4


def test_same_seed_same_sequence_other_seed_differs():
    ratios = _ratios()
    a = _take(GroupedBatchSampler(ratios, 2, num_scales=2, seed=5), 30)
    b = _take(GroupedBatchSampler(ratios, 2, num_scales=2, seed=5), 30)
    c = _take(GroupedBatchSampler(ratios, 2, num_scales=2, seed=6), 30)
    assert a == b and a != c


@pytest.mark.parametrize("group", [True, False])
def test_ranks_take_disjoint_shares_of_the_global_batch(group):
    ratios = _ratios(50)
    whole = _take(GroupedBatchSampler(ratios, 6, group_by_aspect=group, seed=3), 25)
    shares = [
        _take(
            GroupedBatchSampler(ratios, 2, group_by_aspect=group, seed=3, rank=r, world_size=3), 25
        )
        for r in range(3)
    ]
    for step in range(25):
        parts = [shares[r][step] for r in range(3)]
        indices = [k[0] for part in parts for k in part]
        assert len(set(indices)) == 6  # disjoint
        assert parts[0] + parts[1] + parts[2] == whole[step]


@pytest.mark.parametrize("consumed", [0, 3, 8, 17])  # 8 batches per epoch: crosses epochs
def test_resume_continues_the_same_sequence(consumed):
    ratios = _ratios()
    uninterrupted = _take(GroupedBatchSampler(ratios, 4, num_scales=2, seed=7), consumed + 12)
    first = GroupedBatchSampler(ratios, 4, num_scales=2, seed=7)
    assert len(first) == 8
    assert _take(first, consumed) == uninterrupted[:consumed]
    state = first.state_dict()
    assert state["next_batch"] == consumed
    resumed = GroupedBatchSampler(ratios, 4, num_scales=2, seed=0)  # seed comes from the state
    resumed.load_state_dict(state)
    assert _take(resumed, 12) == uninterrupted[consumed:]


def test_state_for_another_roidb_is_refused():
    state = GroupedBatchSampler(_ratios(37), 4).state_dict()
    with pytest.raises(ValueError, match="37 images"):
        GroupedBatchSampler(_ratios(40), 4).load_state_dict(state)


def test_too_few_images_for_a_batch():
    with pytest.raises(ValueError, match="cannot fill one global batch"):
        GroupedBatchSampler(np.array([1.5, 0.5]), 2)  # one image per orientation
    with pytest.raises(ValueError, match="rank"):
        GroupedBatchSampler(_ratios(), 2, rank=2, world_size=2)


def test_inference_sampler_shards_in_order():
    shards = [list(InferenceSampler(10, r, 3)) for r in range(3)]
    assert shards == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
