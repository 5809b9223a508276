"""What early stopping holds out: the plans and the splits, against the rules stated in them."""

import numpy as np
import pytest

from sk_deepmetric.embedders import _holdout
from sk_deepmetric.embedders._holdout import holdout_plan, holdout_split
from sk_deepmetric.embedders._params import _COMMON_DOC, COMMON_PARAMS


def labels(n_classes, per_class):
    return np.repeat(np.arange(n_classes), per_class)


@pytest.mark.parametrize(
    ("n_classes", "per_class", "early_stopping", "holdout", "plan"),
    [
        (20, 20, "auto", "auto", "classes"),  # 4 classes held out
        (18, 20, "auto", "auto", "classes"),  # 20% of 18 rounds to 4 ...
        (17, 20, "auto", "auto", "samples"),  # ... of 17 to 3: too few for "auto"
        (10, 20, "auto", "auto", "samples"),  # 2 held-out classes: a noisy guide
        (10, 20, "auto", "both", "mixed"),
        (5, 20, "auto", "both", "samples"),
        (10, 20, "auto", "classes", "classes"),
        (10, 20, "auto", "samples", "samples"),
        (5, 20, "auto", "auto", "samples"),  # too few classes to hold 2 out of 20%
        (5, 20, "auto", "classes", None),
        (5, 3, "auto", "auto", None),  # too few samples of each class as well
        (5, 3, True, "auto", "samples"),  # asked for: holdout_split then explains
        (5, 20, True, "classes", "classes"),  # 2 of 5 classes when asked for
        (10, 20, False, "auto", None),
    ],
)
def test_plan(n_classes, per_class, early_stopping, holdout, plan):
    assert holdout_plan(labels(n_classes, per_class), early_stopping, holdout, 0.2) == plan


def test_the_docstring_gives_the_auto_threshold():
    """The ``validation_holdout`` docstring names the number of classes from which "auto"
    holds out classes at the default ``validation_fraction`` (18: 0.2 x 18 rounds to 4)."""
    fraction = COMMON_PARAMS["validation_fraction"]
    plans = {n: holdout_plan(labels(n, 6), "auto", "auto", fraction) for n in range(2, 60)}
    first = min(n for n, plan in plans.items() if plan == "classes")
    assert f"({first} classes at the default" in " ".join(_COMMON_DOC.split())


def with_singletons(n_classes, per_class, n_singletons):
    return np.concatenate([labels(n_classes, per_class), n_classes + np.arange(n_singletons)])


@pytest.mark.parametrize(
    ("n_classes", "n_singletons", "early_stopping", "holdout", "plan"),
    [
        # 20% of the 25 classes would be all 5 with a positive pair: samples instead
        (5, 20, "auto", "auto", "samples"),
        (5, 20, "auto", "classes", None),
        (5, 20, True, "classes", "classes"),  # 2 of the 5 when asked for, 3 still trained
        (3, 20, True, "classes", "samples"),  # 2 held out would leave 1 to train on
        (25, 100, "auto", "auto", "classes"),  # 5 of the 25, not 25 of the 125
    ],
)
def test_classes_of_one_sample_neither_count_nor_are_held_out(
    n_classes, n_singletons, early_stopping, holdout, plan
):
    y = with_singletons(n_classes, 20, n_singletons)
    assert holdout_plan(y, early_stopping, holdout, 0.2) == plan
    if plan in ("classes", "samples"):
        train, validation = holdout_split(y, plan, holdout, 0.2, np.random.default_rng(0))
        trained = np.unique(y[train], return_counts=True)[1]
        assert np.sum(trained >= 2) >= 2  # classes with positives left to train on
        assert np.all(np.isin(np.arange(n_classes, n_classes + n_singletons), y[train]))
        if plan == "classes":
            held_out = np.unique(y[validation]).size
            assert held_out == max(2, round(0.2 * n_classes))


def test_mixed_holds_out_classes_and_samples_of_the_others():
    y = labels(10, 20)
    train, validation = holdout_split(y, "mixed", "both", 0.2, np.random.default_rng(0))
    assert np.intersect1d(train, validation).size == 0
    assert np.union1d(train, validation).size == y.size
    unseen = np.setdiff1d(np.unique(y[validation]), np.unique(y[train]))
    assert unseen.size == 2  # 20% of 10 classes, all their samples held out
    for c in np.unique(y[train]):
        # 20% of each remaining class's 20 samples
        assert np.sum(y[validation] == c) == 4 and np.sum(y[train] == c) == 16


def test_samples_and_classes_plans_are_unchanged_by_the_mixed_one():
    # the two older plans draw the same splits as before the mixed plan existed
    y = labels(6, 10)
    _, classes = holdout_split(y, "classes", "classes", 0.34, np.random.default_rng(1))
    rng = np.random.default_rng(1)
    held_out = rng.choice(np.arange(6), 2, replace=False)
    np.testing.assert_array_equal(classes, np.flatnonzero(np.isin(y, held_out)))
    _, samples = holdout_split(y, "samples", "samples", 0.2, np.random.default_rng(2))
    rng, expected = np.random.default_rng(2), []
    for c in range(6):
        expected.extend(rng.permutation(np.flatnonzero(y == c))[:2])
    np.testing.assert_array_equal(samples, np.sort(expected))


@pytest.mark.parametrize("plan", ["samples", "classes", "mixed"])
def test_scored_samples_are_capped_per_class(plan, monkeypatch):
    monkeypatch.setattr(_holdout, "MAX_VALIDATION_SAMPLES", 60)
    y = labels(20, 30)
    holdout = "both" if plan == "mixed" else plan
    train, scored = holdout_split(y, plan, holdout, 0.2, np.random.default_rng(0))
    assert scored.size <= 60 + 2 * 20  # each class keeps its share, and at least 2
    assert np.all(np.diff(scored) > 0)
    seen = np.unique(y[train])
    assert all(np.sum(y[scored] == c) >= 2 for c in np.unique(y[scored]))
    # unscored samples of trained classes go back to training; of held-out classes, nowhere
    used = np.union1d(train, scored)
    dropped = np.setdiff1d(np.arange(y.size), used)
    assert np.isin(y[dropped], seen).sum() == 0
    if plan == "samples":
        assert dropped.size == 0


@pytest.mark.parametrize("fraction", [0.5, 0.8, 0.9, 0.95])
def test_early_stopping_true_holds_out_classes_leaving_two_to_train_on(fraction):
    # a large fraction asked for a class hold-out still holds out classes, all but 2 at most,
    # rather than falling back to samples of every class (seen in training)
    y = labels(10, 20)
    assert holdout_plan(y, True, "classes", fraction) == "classes"
    train, validation = holdout_split(y, "classes", "classes", fraction, np.random.default_rng(0))
    held_out = np.unique(y[validation])
    assert held_out.size == min(round(fraction * 10), 8)
    assert np.intersect1d(held_out, y[train]).size == 0
