import re

import numpy as np
import pytest

from sk_deepmetric.samplers import ClassBalancedBatchSampler, ShuffledBatchSampler


def _labels():
    return np.repeat(np.arange(10), [12, 9, 8, 8, 5, 4, 3, 2, 2, 1])


def test_balanced_batches_hold_p_classes_of_k_samples():
    labels = _labels()
    sampler = ClassBalancedBatchSampler(labels, 16, 4, rng=np.random.default_rng(0))
    batches = list(sampler)
    assert len(batches) == len(sampler) == round(labels.size / 16)
    for batch in batches:
        classes, counts = np.unique(labels[batch], return_counts=True)
        assert classes.size == 4
        assert np.all(counts <= 4)
        assert np.unique(batch).size == batch.size  # no duplicates inside a batch
        # A class contributes min(K, its size) samples.
        sizes = np.bincount(labels)[classes]
        np.testing.assert_array_equal(counts, np.minimum(4, sizes))


def test_balanced_sampler_is_seeded():
    labels = _labels()

    def draw(seed):
        sampler = ClassBalancedBatchSampler(labels, 8, 2, rng=np.random.default_rng(seed))
        return [b.tolist() for _ in range(3) for b in sampler]

    assert draw(0) == draw(0)
    assert draw(0) != draw(1)


def test_balanced_epoch_visits_samples_of_a_class_before_repeating():
    labels = np.repeat(np.arange(2), 6)
    sampler = ClassBalancedBatchSampler(labels, 4, 2, rng=np.random.default_rng(0))
    seen = np.concatenate(list(sampler))
    assert seen.size == 12
    np.testing.assert_array_equal(np.sort(seen), np.arange(12))


def test_few_classes_fill_the_batch_with_more_samples_per_class():
    labels = np.repeat(np.arange(3), 20)
    sampler = ClassBalancedBatchSampler(labels, 24, 4, rng=np.random.default_rng(0))
    assert sampler.n_classes_per_batch == 3
    for batch in sampler:
        np.testing.assert_array_equal(np.bincount(labels[batch]), [8, 8, 8])


def test_distributed_ranks_get_disjoint_whole_classes():
    labels = _labels()
    global_sampler = ClassBalancedBatchSampler(labels, 16, 4, rng=np.random.default_rng(3))
    ranks = [
        ClassBalancedBatchSampler(labels, 8, 4, rng=np.random.default_rng(3), world_size=2, rank=r)
        for r in range(2)
    ]
    assert len(ranks[0]) == len(ranks[1]) == len(global_sampler)
    for b0, b1, whole in zip(*ranks, global_sampler):
        assert not set(labels[b0]) & set(labels[b1])
        # The two ranks together draw exactly the single-process global batch.
        assert sorted(np.concatenate([b0, b1]).tolist()) == sorted(whole.tolist())


@pytest.mark.parametrize(
    ("batch_size", "k", "match"),
    [
        (6, 4, r"`batch_size` \(6\) must be at least 2 x `samples_per_class` \(4\)"),
        (8, 1, r"`samples_per_class` at least 2"),
    ],
)
def test_balanced_rejects_batches_without_pairs(batch_size, k, match):
    with pytest.raises(ValueError, match=match):
        ClassBalancedBatchSampler(_labels(), batch_size, k, rng=np.random.default_rng(0))


def test_balanced_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes per rank; got 1 classes"):
        ClassBalancedBatchSampler(np.zeros(8), 8, 2, rng=np.random.default_rng(0))


def test_shuffled_batches_cover_all_samples_once_without_singletons():
    sampler = ShuffledBatchSampler(33, 16, rng=np.random.default_rng(0))
    batches = list(sampler)
    assert [b.size for b in batches] == [11, 11, 11]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(33))


def test_shuffled_distributed_split():
    whole = list(ShuffledBatchSampler(20, 10, rng=np.random.default_rng(0)))
    parts = [
        list(ShuffledBatchSampler(20, 5, rng=np.random.default_rng(0), world_size=2, rank=r))
        for r in range(2)
    ]
    for w, a, b in zip(whole, *parts):
        np.testing.assert_array_equal(np.concatenate([a, b]), w)


@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("batch_size", [2, 3, 5, 16])
def test_shuffled_batches_never_hold_one_sample(batch_size, world_size):
    # batch_size 2 and an odd number of samples: a batch of one unless one batch takes three
    for n in range(2 * world_size, 60):
        per_rank = [
            list(ShuffledBatchSampler(n, batch_size, rng=np.random.default_rng(n), **ranks))
            for ranks in ({"world_size": world_size, "rank": r} for r in range(world_size))
        ]
        sizes = [b.size for batches in per_rank for b in batches]
        assert min(sizes) >= 2, (n, sizes)
        # across ranks, 7 samples on 2 ranks are one batch of 4 + 3 (two would leave a 1)
        assert max(sizes) <= (batch_size + 1 if world_size == 1 else 2 * batch_size)
        everything = np.concatenate([b for batches in per_rank for b in batches])
        np.testing.assert_array_equal(np.sort(everything), np.arange(n))
        wanted = -(-n // (world_size * batch_size))
        assert len(per_rank[0]) in (wanted, wanted - 1)


# ----------------------------------------------------------------- argument checks


def _rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((10, 0), {}, "`batch_size` must be in the range [1, inf], got 0."),
        ((10, 4.0), {}, "`batch_size` must be an integer, got 4.0 of type float."),
        ((0, 4), {}, "`n_samples` must be in the range [1, inf], got 0."),
        ((np.float64(10), 4), {}, "`n_samples` must be an integer, got np.float64(10.0) of type"),
        ((10, 4), {"world_size": 0}, "`world_size` must be in the range [1, inf], got 0."),
        ((10, 4), {"world_size": 2, "rank": 2}, "`rank` must be in 0..1, got 2."),
        ((10, 4), {"world_size": 2, "rank": 1.0}, "`rank` must be an integer, got 1.0 of type"),
    ],
)
def test_shuffled_checks_its_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ShuffledBatchSampler(*args, rng=_rng(), **kwargs)


def test_shuffled_numpy_integers_are_integers():
    sampler = ShuffledBatchSampler(np.int64(10), np.int32(4), rng=_rng())
    assert [b.size for b in sampler] == [4, 3, 3]


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        ((8, 2.0), {}, "`samples_per_class` must be an integer, got 2.0 of type float."),
        ((8.0, 2), {}, "`batch_size` must be an integer, got 8.0 of type float."),
        ((8, 2), {"world_size": "2"}, "`world_size` must be an integer, got '2' of type str."),
        ((8, 2), {"world_size": 2, "rank": -1}, "`rank` must be in 0..1, got -1."),
    ],
)
def test_balanced_checks_its_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ClassBalancedBatchSampler(_labels(), *args, rng=_rng(), **kwargs)


@pytest.mark.parametrize("rng", [0, None, np.random.RandomState(0)])
def test_samplers_need_a_numpy_generator(rng):
    message = r"`rng` must be a numpy.random.Generator .*, got "
    with pytest.raises(ValueError, match=message):
        ClassBalancedBatchSampler(_labels(), 8, 2, rng=rng)
    with pytest.raises(ValueError, match=message):
        ShuffledBatchSampler(40, 8, rng=rng)


def test_balanced_labels_are_one_dimensional():
    # a (n, 2) array would be flattened into 2n "samples", indices past the data
    with pytest.raises(ValueError, match=re.escape("got shape (40, 2).")):
        ClassBalancedBatchSampler(np.zeros((40, 2)), 8, 2, rng=_rng())


# ----------------------------------------------------------------- how often a sample is seen


def _visits(sampler, n_samples, epochs):
    counts = np.zeros(n_samples, dtype=int)
    for _ in range(epochs):
        for batch in sampler:
            np.add.at(counts, batch, 1)
    return counts


def test_balanced_epoch_sees_each_sample_about_once_with_many_balanced_classes():
    labels = np.repeat(np.arange(50), 20)  # P = 4 of 50 classes, none a large share
    sampler = ClassBalancedBatchSampler(labels, 16, 4, rng=_rng())
    epochs = 50
    counts = _visits(sampler, labels.size, epochs)
    # every batch holds 4 classes of 4, and each class is visited in a cycle: its samples'
    # counts differ by at most one
    assert counts.sum() == epochs * len(sampler) * 16
    for c in range(50):
        assert np.ptp(counts[labels == c]) <= 1
    # a class is in a batch with probability about 4 / 50, so in about 250 of the 3100
    # batches, with a standard deviation of about 15 (binomial): 1 +- 0.3 is 5 of them
    rate = counts / epochs
    assert np.all((rate > 0.7) & (rate < 1.3))


def test_balanced_epoch_with_few_imbalanced_classes_repeats_the_small_ones():
    # the docstring's example: classes of 1000, 2 and 2 samples, batch_size 8, K 2
    labels = np.repeat(np.arange(3), [1000, 2, 2])
    sampler = ClassBalancedBatchSampler(labels, 8, 2, rng=_rng())
    assert len(sampler) == 126 and sampler.n_classes_per_batch == 3
    counts = _visits(sampler, labels.size, epochs=1)
    # every batch holds all three classes, two samples each
    np.testing.assert_array_equal(counts[1000:], [126] * 4)
    assert counts[:1000].sum() == 2 * 126  # 0.252 per sample
