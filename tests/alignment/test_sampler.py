"""The annotator batch sampler: whole chunks, seeded shuffles, and a 2-rank simulation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from alignment.sampler import AnnotatorBatchSampler, pack_chunks


def _groups(seed: int = 7) -> list[str]:
    """Ragged panels: 23 annotators with 1 to 17 rows each, interleaved as in a real dataset."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 18, size=23)
    groups = [f"a{k}" for k, n in enumerate(sizes) for _ in range(n)]
    return [groups[i] for i in rng.permutation(len(groups))]


def _chunk_of(sampler: AnnotatorBatchSampler) -> dict[int, int]:
    return {row: k for k, chunk in enumerate(sampler.chunks()) for row in chunk}


@pytest.mark.parametrize(("batch_size", "pairs_per_annotator"), [(4, None), (6, 2), (5, 3), (8, 1)])
def test_one_rank_sees_every_row_once_in_whole_chunks(batch_size, pairs_per_annotator):
    groups = _groups()
    sampler = AnnotatorBatchSampler(groups, batch_size, pairs_per_annotator=pairs_per_annotator)
    batches = list(sampler)
    assert len(batches) == len(sampler)
    rows = sorted(itertools.chain.from_iterable(batches))
    assert rows == list(range(len(groups)))
    assert max(map(len, batches)) <= batch_size
    chunk_of = _chunk_of(sampler)
    chunks = sampler.chunks()
    for chunk in chunks:
        assert len(chunk) <= sampler.chunk_size
        assert len({groups[i] for i in chunk}) == 1  # one annotator per chunk
    for batch in batches:
        for k in {chunk_of[i] for i in batch}:
            assert set(chunks[k]) <= set(batch)  # a chunk is never split by packing
    # an annotator with more rows than a chunk holds is cut into full chunks plus one remainder
    sizes = {g: groups.count(g) for g in set(groups)}
    step = sampler.chunk_size
    assert len(chunks) == sum(-(-n // step) for n in sizes.values())


def test_packing_is_first_fit_and_fills_batches_when_chunks_allow():
    assert pack_chunks([[0, 1, 2], [3, 4], [5], [6, 7, 8, 9], [10]], 4) == [
        [0, 1, 2, 5],
        [3, 4, 10],
        [6, 7, 8, 9],
    ]
    # chunks of two into batches of four: every batch full
    sampler = AnnotatorBatchSampler(
        [g for g in range(10) for _ in range(4)], 4, pairs_per_annotator=2
    )
    assert all(len(b) == 4 for b in sampler)
    with pytest.raises(ValueError, match="chunk of 5 rows"):
        pack_chunks([[0, 1, 2, 3, 4]], 4)


def test_shuffle_depends_on_seed_and_epoch_only():
    groups = _groups()
    a = AnnotatorBatchSampler(groups, 4, seed=3)
    b = AnnotatorBatchSampler(groups, 4, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(AnnotatorBatchSampler(groups, 4, seed=4)) != first
    ordered = AnnotatorBatchSampler(groups, 4, shuffle=False)
    assert list(ordered) == list(AnnotatorBatchSampler(groups, 4, shuffle=False, seed=9))


@pytest.mark.parametrize("drop_last", [False, True])
def test_two_ranks_split_the_chunks_and_yield_equal_numbers_of_batches(drop_last):
    groups = _groups(seed=11)
    ranks = [
        AnnotatorBatchSampler(
            groups, 4, pairs_per_annotator=3, num_replicas=2, rank=r, seed=5, drop_last=drop_last
        )
        for r in range(2)
    ]
    batches = [list(s) for s in ranks]
    assert len(batches[0]) == len(batches[1]) == len(ranks[0]) == len(ranks[1])
    # both ranks cut and deal the same chunks (same seed), and each chunk lives on one rank
    assert ranks[0].chunks() == ranks[1].chunks()
    owner = {}
    for rank, rank_batches in enumerate(ranks[0].rank_batches()):
        for batch in rank_batches:
            for row in batch:
                owner[row] = rank
    for chunk in ranks[0].chunks():
        assert len({owner[i] for i in chunk}) == 1
    seen = [set(itertools.chain.from_iterable(b)) for b in batches]
    assert not seen[0] & seen[1]
    if drop_last:
        assert len(seen[0] | seen[1]) <= len(groups)
    else:  # padding repeats a rank's own batches, so every row is seen
        assert seen[0] | seen[1] == set(range(len(groups)))
    loads = [sum(map(len, b)) for b in ranks[0].rank_batches()]
    assert abs(loads[0] - loads[1]) <= 3  # dealt to the lighter rank: within one chunk


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="batch_size"):
        AnnotatorBatchSampler(["a"], 0)
    with pytest.raises(ValueError, match="pairs_per_annotator"):
        AnnotatorBatchSampler(["a"], 2, pairs_per_annotator=0)
    with pytest.raises(ValueError, match="rank must be in"):
        AnnotatorBatchSampler(["a", "b"], 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="1 annotators cannot"):
        AnnotatorBatchSampler(["a", "a"], 2, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match="no rows"):
        AnnotatorBatchSampler([], 2)
