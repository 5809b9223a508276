"""Batch samplers: class-balanced P x K batches for tuple losses, shuffled ones for the rest.

Tuple losses (contrastive, triplet, n-pairs, angular) learn only from pairs inside a batch, so
each batch must hold several samples of several classes: ``P`` classes with ``K`` samples
each (Schroff et al., FaceNet; Hermans et al., "In Defense of the Triplet Loss"). Both
samplers are iterables of index arrays, seeded from a ``numpy.random.Generator`` and
reproducible.

Distributed training (one process per device) builds a *global* batch of ``world_size``
local batches and gives each rank whole classes: every rank draws the same global sequence
(same seed) and keeps its own slice, so no class is split across ranks and all ranks run the
same number of steps.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ._validation import check_int

__all__ = ["ClassBalancedBatchSampler", "ShuffledBatchSampler"]


class ClassBalancedBatchSampler:
    """Yield batches of ``P`` distinct classes with up to ``K`` samples each.

    ``K = samples_per_class`` and ``P = batch_size // K``. When the data hold fewer than ``P``
    classes, each batch holds every class with ``batch_size // n_classes`` samples (more than
    ``K``), so batches keep their size. A class smaller than its share contributes all its
    samples (no duplicates); a single-sample class serves only as a negative.

    Each batch picks its ``P`` classes (``world_size * P`` for a global batch, which is the
    ``P`` below) without replacement, with probability proportional to their size, and each
    class's samples are visited in a reshuffled cycle. One epoch is ``len(sampler) =
    max(1, round(n_samples / (world_size * batch_size)))`` batches. With many more
    classes than ``P``, none of them a large share of the data (``P * n_c`` well below
    ``n_samples`` for a class of ``n_c`` samples), and each of at least ``K`` samples, an
    epoch sees about ``n_samples`` samples, each about once.

    Otherwise it does not, because a class cannot be picked twice for one batch. A class
    with ``P * n_c`` near or above ``n_samples`` is in nearly every batch, and with at most
    ``P`` classes every class is in every batch; with imbalanced classes, a small class's
    samples then repeat many times per epoch while a large class's are seen a fraction of a
    time: with classes of 1000, 2 and 2 samples, ``batch_size=8`` and ``K=2``, each sample of a
    small class is drawn 126 times per epoch (once per batch) and one of the large class
    about 0.25 times. A class of fewer than ``K`` samples gives all of them when picked, so
    each is seen about ``n_c / K`` times per epoch, and batches fall short of ``batch_size``.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Class labels (integers or strings).
    batch_size : int
        Samples per batch on one rank (at most ``P * K``; fewer when classes are small).
    samples_per_class : int
        ``K``; at least 2 so that a batch holds positive pairs.
    rng : numpy.random.Generator
        Source of all randomness; its state advances as batches are drawn.
    world_size : int, default=1
        Number of ranks sharing each global batch of ``world_size * batch_size`` samples.
    rank : int, default=0
        Which slice of ``world_size`` this sampler yields.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_deepmetric.samplers import ClassBalancedBatchSampler
    >>> labels = np.repeat([0, 1, 2, 3], 4)
    >>> sampler = ClassBalancedBatchSampler(labels, 4, 2, rng=np.random.default_rng(0))
    >>> [np.unique(labels[b]).size for b in sampler]
    [2, 2, 2, 2]
    """

    def __init__(
        self,
        labels: np.ndarray,
        batch_size: int,
        samples_per_class: int,
        *,
        rng: np.random.Generator,
        world_size: int = 1,
        rank: int = 0,
    ) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError(
                f"`labels` must be 1-D, of shape (n_samples,), got shape {labels.shape}."
            )
        check_int(batch_size, "batch_size")
        check_int(samples_per_class, "samples_per_class")
        _check_rng_and_rank(rng, world_size, rank)
        if samples_per_class < 2 or batch_size < 2 * samples_per_class:
            raise ValueError(
                f"`batch_size` ({batch_size}) must be at least 2 x `samples_per_class` "
                f"({samples_per_class}), and `samples_per_class` at least 2, so that a batch "
                "holds positive and negative pairs."
            )
        classes, inverse = np.unique(labels, return_inverse=True)
        if classes.size < 2 * world_size:
            raise ValueError(
                f"Class-balanced batches need at least 2 classes per rank; got "
                f"{classes.size} classes for {world_size} rank(s)."
            )
        self.rng = rng
        self.world_size = world_size
        self.rank = rank
        self._members = [np.flatnonzero(inverse == c) for c in range(classes.size)]
        self._sizes = np.array([m.size for m in self._members], dtype=float)
        self.n_classes_per_batch = min(batch_size // samples_per_class, classes.size // world_size)
        self.samples_per_class = max(samples_per_class, batch_size // self.n_classes_per_batch)
        self._n_batches = max(1, round(labels.size / (world_size * batch_size)))
        self._queues: list[list[int]] = [[] for _ in self._members]

    def __len__(self) -> int:
        return self._n_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        n_global = self.world_size * self.n_classes_per_batch
        for _ in range(self._n_batches):
            picked = self.rng.choice(
                len(self._members), n_global, replace=False, p=self._sizes / self._sizes.sum()
            )
            mine = picked[self.rank :: self.world_size]
            # Draw for every class of the global batch, in order, so that all ranks' RNGs and
            # queues stay in step.
            drawn = {int(c): self._take(int(c)) for c in picked}
            yield np.concatenate([drawn[int(c)] for c in mine])

    def _take(self, c: int) -> np.ndarray:
        """Next ``min(K, class size)`` samples of class ``c``, reshuffling the cycle as needed."""
        k = min(self.samples_per_class, self._members[c].size)
        queue = self._queues[c]
        if len(queue) < k:
            rest = set(queue)
            fresh = [i for i in self.rng.permutation(self._members[c]) if i not in rest]
            queue.extend(fresh)
        taken, self._queues[c] = queue[:k], queue[k:]
        return np.asarray(taken, dtype=np.int64)


class ShuffledBatchSampler:
    """Yield a fresh permutation of ``range(n_samples)`` split into near-equal batches.

    ``ceil(n_samples / batch_size)`` batches whose sizes differ by at most one, so that no
    batch holds a single sample (which batch normalisation cannot train on) unless
    ``n_samples`` is 1; where that would take a batch of one (``batch_size`` 2 and an odd
    ``n_samples``, say), one batch fewer, a batch of ``batch_size + 1`` among them. With
    ``world_size > 1`` each global batch is split across ranks, at least two samples each
    where there are enough.

    Parameters
    ----------
    n_samples : int
        Number of samples to draw from, at least 1 (as for ``torch.utils.data.RandomSampler``,
        an empty data set is an error rather than an epoch of nothing).
    batch_size : int
        Samples per batch on one rank, at least 1.
    rng : numpy.random.Generator
        Source of all randomness; its state advances with each epoch.
    world_size : int, default=1
        Number of ranks sharing each global batch of ``world_size * batch_size`` samples.
    rank : int, default=0
        Which slice of ``world_size`` this sampler yields.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_deepmetric.samplers import ShuffledBatchSampler
    >>> [b.size for b in ShuffledBatchSampler(10, 4, rng=np.random.default_rng(0))]
    [4, 3, 3]
    """

    def __init__(
        self,
        n_samples: int,
        batch_size: int,
        *,
        rng: np.random.Generator,
        world_size: int = 1,
        rank: int = 0,
    ) -> None:
        check_int(n_samples, "n_samples", min_value=1)
        check_int(batch_size, "batch_size", min_value=1)
        _check_rng_and_rank(rng, world_size, rank)
        self.n_samples = n_samples
        self.rng = rng
        self.world_size = world_size
        self.rank = rank
        batches = -(-n_samples // (world_size * batch_size))
        self._n_batches = max(1, min(batches, n_samples // (2 * world_size)))

    def __len__(self) -> int:
        return self._n_batches

    def __iter__(self) -> Iterator[np.ndarray]:
        order = self.rng.permutation(self.n_samples)
        for batch in np.array_split(order, self._n_batches):
            yield np.array_split(batch, self.world_size)[self.rank]


def _check_rng_and_rank(rng: object, world_size: object, rank: object) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(
            "`rng` must be a numpy.random.Generator (numpy.random.default_rng(seed)), got "
            f"{rng!r}."
        )
    check_int(world_size, "world_size", min_value=1)
    check_int(rank, "rank")
    if not 0 <= rank < world_size:
        raise ValueError(f"`rank` must be in 0..{world_size - 1}, got {rank}.")
