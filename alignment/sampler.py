"""A batch sampler that keeps each annotator's pairs together (annotator-level MixDPO).

The annotator-level loss scores the pairs of one annotator in a batch jointly,
``log E_beta[prod_i sigmoid(beta delta_i)]`` (one strength draw per annotator), so its pairs
must share batches. :class:`AnnotatorBatchSampler` cuts every annotator's rows into *chunks*
and packs whole chunks into batches:

* a chunk holds at most ``pairs_per_annotator`` of one annotator's rows (all of them when
  ``None``) and at most ``batch_size``: a larger chunk is cut into batch-sized pieces, which
  land in different batches;
* each epoch (seed ``seed + epoch``) shuffles the rows within every annotator, re-cuts the
  chunks, shuffles them and packs them first-fit into batches of at most ``batch_size`` rows.
  A chunk is never split by packing, so a batch may hold fewer than ``batch_size`` rows when
  no remaining chunk fits its room. Two chunks of one annotator may share a batch; the loss
  then scores them together, as one larger panel;
* distributed (``num_replicas`` ranks): the chunks are dealt to the ranks (each to the rank
  with the fewest rows so far), so every rank sees whole chunks, and each rank packs its own;
  all ranks yield the same number of batches (the shorter ones repeat their first batches,
  as ``DistributedSampler`` pads; ``drop_last=True`` truncates to the shortest rank instead).

The composite-likelihood effect of cutting: the pieces of an annotator's rows are scored as
if each had its own strength draw, i.e. the loss becomes a sum over pieces of
``log E_beta[prod_{i in piece} sigmoid(beta delta_i)]``. That is a composite likelihood, still
unbiased for the strength distribution in expectation over pieces (each piece's term is a
true marginal likelihood) but with less information than the full panel: the within-annotator
correlation of labels across pieces is ignored, so the curvature in the CV is that of panels
of the piece size, not of the whole panel. Larger batches (or ``gradient_accumulation_steps``
with larger per-device batches) give larger pieces; with ``pairs_per_annotator=1`` every piece
is one pair and the loss is pair-level MixDPO. :class:`alignment.MixDPOTrainer` avoids the
loss of information by default: with ``MixDPOConfig.strength_panel_memory`` each piece is
scored given the annotator's pieces already seen in the pass
(:class:`alignment.losses.panel.PanelMemory`), and a pass adds up to the full panel
likelihood; ``pairs_per_annotator`` then only sets how the pieces are cut.

Gradient accumulation needs nothing special: each micro-batch is a set of whole chunks. With
:class:`alignment.MixDPOTrainer` the sampler is built for the accelerate process grid (rank-
aware, and accelerate's own batch sharding is switched off for it).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

__all__ = ["AnnotatorBatchSampler", "pack_chunks"]


def pack_chunks(chunks: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """First-fit packing of ``chunks`` (each ``<= batch_size`` rows), in order, into batches.

    Each chunk goes to the earliest-opened batch with room for all of it, else opens a new
    one. Returns the batches in the order they were opened.
    """
    batches: list[list[int]] = []
    # open[r]: heap of the indices of batches with exactly r free rows (first fit = smallest
    # index among the heaps with r >= the chunk's size), O(batch_size log n) per chunk.
    open_by_room: list[list[int]] = [[] for _ in range(batch_size)]
    for chunk in chunks:
        size = len(chunk)
        if size > batch_size or size == 0:
            raise ValueError(f"chunk of {size} rows cannot be packed into batches of {batch_size}")
        candidates = [(h[0], r) for r, h in enumerate(open_by_room) if r >= size and h]
        if candidates:
            index, room = min(candidates)
            heapq.heappop(open_by_room[room])
            batches[index].extend(chunk)
        else:
            index, room = len(batches), batch_size
            batches.append(list(chunk))
        if room - size:
            heapq.heappush(open_by_room[room - size], index)
    return batches


class AnnotatorBatchSampler(torch.utils.data.Sampler[list[int]]):
    """Batches of row indices that keep an annotator's rows together (see the module docstring).

    Args:
        groups: the annotator of every dataset row (any hashable ids), length ``N``.
        batch_size: most rows per batch (the per-device batch size).
        pairs_per_annotator: most rows of one annotator per chunk; ``None``: all of them
            (still cut at ``batch_size``).
        shuffle: shuffle rows within annotators and chunks each epoch (``False``: the dataset
            order, for evaluation).
        seed: base seed; epoch ``e`` uses ``seed + e`` (set with :meth:`set_epoch`).
        num_replicas, rank: the distributed grid (default: one process).
        drop_last: truncate every rank to the shortest rank's batch count instead of padding.

    Yields:
        lists of row indices, one per batch of this rank.
    """

    #: Batches vary in size: accelerate reads ``batch_size`` and treats ``None`` as dynamic
    #: (a fixed size would make its sharding drop or refill the short batches).
    batch_size = None

    def __init__(
        self,
        groups: Sequence[Any],
        batch_size: int,
        *,
        pairs_per_annotator: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        drop_last: bool = False,
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if pairs_per_annotator is not None and (
            isinstance(pairs_per_annotator, bool)
            or not isinstance(pairs_per_annotator, int)
            or pairs_per_annotator < 1
        ):
            raise ValueError(
                f"pairs_per_annotator must be a positive integer or None, got {pairs_per_annotator!r}"
            )
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas must be a positive integer, got {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas}), got {rank!r}")
        groups = list(groups)
        if not groups:
            raise ValueError("groups is empty: the dataset has no rows")
        rows: dict[Any, list[int]] = {}
        for index, group in enumerate(groups):
            rows.setdefault(group, []).append(index)
        if len(rows) < num_replicas:
            raise ValueError(
                f"{len(rows)} annotators cannot give whole chunks to {num_replicas} ranks"
            )
        self._rows = list(rows.values())  # first-appearance order of the annotators
        self.num_rows = len(groups)
        self.max_batch_size = batch_size
        self.pairs_per_annotator = pairs_per_annotator
        self.shuffle = shuffle
        self.seed = int(seed)
        self.num_replicas = num_replicas
        self.rank = rank
        self.drop_last = drop_last
        self.epoch = 0
        self._cache: tuple[Any, list[list[int]]] | None = None

    @property
    def chunk_size(self) -> int:
        """Most rows per chunk: ``min(pairs_per_annotator, batch_size)``."""
        return min(self.pairs_per_annotator or self.max_batch_size, self.max_batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Use the shuffle of ``epoch`` (the Trainer calls this before every epoch)."""
        self.epoch = int(epoch)

    def chunks(self) -> list[list[int]]:
        """This epoch's chunks, in packing order (all ranks)."""
        rng = np.random.default_rng(self.seed + self.epoch) if self.shuffle else None
        chunks = []
        for rows in self._rows:
            rows = list(rng.permutation(rows)) if rng is not None else list(rows)
            step = self.chunk_size
            chunks.extend([int(i) for i in rows[k : k + step]] for k in range(0, len(rows), step))
        if rng is not None:
            chunks = [chunks[k] for k in rng.permutation(len(chunks))]
        return chunks

    def rank_batches(self) -> list[list[list[int]]]:
        """This epoch's batches of every rank, before padding to equal counts."""
        assigned: list[list[list[int]]] = [[] for _ in range(self.num_replicas)]
        load = [0] * self.num_replicas
        for chunk in self.chunks():
            rank = min(range(self.num_replicas), key=lambda r: (load[r], r))
            assigned[rank].append(chunk)
            load[rank] += len(chunk)
        return [pack_chunks(chunks, self.max_batch_size) for chunks in assigned]

    def _batches(self) -> list[list[int]]:
        key = (self.epoch, self.seed, self.shuffle)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        every = self.rank_batches()
        count = min(map(len, every)) if self.drop_last else max(map(len, every))
        own = every[self.rank]
        batches = (own * math.ceil(count / len(own)))[:count]
        self._cache = (key, batches)
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        return len(self._batches())
