"""The embedders' validation set, early stopping and ``ConvergenceWarning``.

Which samples are held out (whole classes or part of every class), the restored best epoch,
``early_stopping="auto"``, and the warning's message when ``max_iter`` ends the fit.
"""

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from test_embedders import fast
from torch import nn

import sk_deepmetric.embedders._base as base_module
from sk_deepmetric.embedders import ArcFaceEmbedder, SoftmaxEmbedder, TripletEmbedder
from sk_deepmetric.embedders._params import AUTO_MAX_ITER

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def test_convergence_warning_when_still_improving(digits):
    X, y = digits
    no_validation = {"early_stopping": False, "tol": 0.0}
    with pytest.warns(ConvergenceWarning, match="reached max_iter=2 epochs while its training"):
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=2, **no_validation).fit(X, y)
    # early stopping validates on held-out classes here (10 classes): the warning says so,
    # and suggests only a larger budget
    classes = {"validation_holdout": "classes"}
    with pytest.warns(
        ConvergenceWarning,
        match=r"max_iter=2 epochs while its validation score was still improving\. Increase "
        r"max_iter\.$",
    ):
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=2, tol=0.0, **classes).fit(X, y)
    with pytest.warns(ConvergenceWarning, match="validation score was still improving"):
        fast(TripletEmbedder, max_iter=2, early_stopping=True, tol=0.0, **classes).fit(X, y)
    with warnings.catch_warnings():  # a budget shorter than n_iter_no_change is deliberate
        warnings.simplefilter("error", ConvergenceWarning)
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=3, tol=0.0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        fast(TripletEmbedder, max_iter=2, n_iter_no_change=3, **no_validation).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = fast(
            SoftmaxEmbedder, max_iter=50, n_iter_no_change=1, early_stopping=False, tol=10.0
        ).fit(X, y)
    assert model.n_iter_ == 2  # the second epoch did not improve by tol: converged


@pytest.mark.parametrize(
    ("scores", "patience", "expected"),
    [
        (
            [0.1, 0.2, 0.3, 0.35, 0.4],
            3,
            "TripletEmbedder reached max_iter=4 epochs while its validation score was still "
            "improving. Increase max_iter.",
        ),
        (  # flat after epoch 2: only the patience had not run out
            [0.1, 0.2, 0.3, 0.3, 0.3],
            3,
            "TripletEmbedder reached max_iter=4 epochs before n_iter_no_change=3 epochs without "
            "an improvement by more than tol=0.0001: its validation score last improved in "
            "epoch 2. Increase max_iter, or lower n_iter_no_change.",
        ),
        (
            [0.9, 0.5, 0.6, 0.7, 0.8],
            5,
            "TripletEmbedder reached max_iter=4 epochs before n_iter_no_change=5 epochs without "
            "an improvement by more than tol=0.0001: its validation score never improved on the "
            "starting weights' score. Increase max_iter, or lower n_iter_no_change.",
        ),
        (  # it rose, by less than tol each time: the best epoch is kept, not the start
            [0.5, 0.50005, 0.5001, 0.50015, 0.5],
            5,
            "TripletEmbedder reached max_iter=4 epochs before n_iter_no_change=5 epochs without "
            "an improvement by more than tol=0.0001: its validation score rose, but never by "
            "more than tol over the best before it (the weights of its best epoch, 3, are "
            "kept). Increase max_iter, or lower n_iter_no_change.",
        ),
    ],
)
def test_convergence_warning_says_whether_the_score_still_improved(
    digits, monkeypatch, scores, patience, expected
):
    X, y = digits
    scripted = iter(scores)  # the first is the untrained network's
    monkeypatch.setattr(base_module, "map_at_r", lambda *a, **k: next(scripted))
    with pytest.warns(ConvergenceWarning, match=f"^{re.escape(expected)}$") as record:
        fast(TripletEmbedder, max_iter=4, n_iter_no_change=patience, early_stopping=True).fit(X, y)
    assert record[0].filename == __file__  # points at the caller of fit


class _Start:
    def on_train_begin(self, estimator):
        self.weights = {k: v.clone() for k, v in estimator.module_.state_dict().items()}


def test_a_fit_whose_epochs_never_beat_the_starting_weights_says_it_kept_them(digits, monkeypatch):
    X, y = digits
    scripted = iter([0.9, 0.5, 0.6, 0.5])  # the untrained network's score is never beaten
    monkeypatch.setattr(base_module, "map_at_r", lambda *a, **k: next(scripted))
    start = _Start()
    model = fast(TripletEmbedder, max_iter=10, n_iter_no_change=3, early_stopping=True)
    model.set_params(callbacks=[start])
    with pytest.warns(UserWarning, match=re.escape(
        "TripletEmbedder: none of the 3 epochs of this fit improved the validation score of "
        "its starting weights (the untrained network's), so early stopping kept them."
    )) as record:  # fmt: skip
        model.fit(X, y)
    assert record[0].filename == __file__
    assert model.n_iter_ == 3
    assert all(torch.equal(v, start.weights[k]) for k, v in model.module_.state_dict().items())
    # no second warning where the ConvergenceWarning (max_iter ran out) already says so
    scripted = iter([0.9, 0.5, 0.6, 0.5])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clone(model).set_params(max_iter=2, callbacks=None).fit(X, y)
    assert [type(w.message) for w in caught] == [ConvergenceWarning]


def test_convergence_warning_for_a_flat_training_loss(digits):
    X, y = digits
    model = fast(TripletEmbedder, max_iter=3, n_iter_no_change=3, early_stopping=False, tol=5.0)
    expected = (
        "TripletEmbedder reached max_iter=3 epochs before n_iter_no_change=3 epochs without an "
        "improvement by more than tol=5.0: its training loss last improved in epoch 1. "
        "Increase max_iter, or set early_stopping=True, or lower n_iter_no_change."
    )
    with pytest.warns(ConvergenceWarning, match=f"^{re.escape(expected)}$"):
        model.fit(X, y)


def test_early_stopping_restores_the_best_epoch(digits, monkeypatch):
    X, y = digits
    scripted = iter([0.05, 0.1, 0.5, 0.3, 0.2, 0.4, 0.35, 0.1, 0.1])  # first: before training
    seen = []

    def fake_map_at_r(embedding, labels, **kwargs):
        seen.append((np.array(embedding, copy=True), np.asarray(labels).copy()))
        return next(scripted)

    monkeypatch.setattr(base_module, "map_at_r", fake_map_at_r)
    model = fast(
        TripletEmbedder, early_stopping=True, n_iter_no_change=3, max_iter=20,
        validation_holdout="classes",
    )  # fmt: skip
    model.fit(X, y)
    assert [h["score"] for h in model.history_] == [0.1, 0.5, 0.3, 0.2, 0.4]
    assert model.n_iter_ == 5
    best_embedding, val_labels = seen[2]
    held_out = np.isin(y, np.unique(val_labels))
    assert 0 < held_out.sum() < len(y)  # class-disjoint: whole classes held out
    np.testing.assert_array_equal(model.transform(X[held_out]), best_embedding)


class _Centred(nn.Module):
    """Subtracts a running mean of its input, kept in a buffer that training either replaces
    (``self.center = ...``, the usual idiom) or updates in place but leaves out of
    ``state_dict`` (``persistent=False``)."""

    def __init__(self, mode):
        super().__init__()
        self.mode, self.linear = mode, nn.Linear(64, 8)
        self.register_buffer("center", torch.zeros(64), persistent=mode != "non-persistent")

    def forward(self, x):
        if self.training and self.mode == "replaced":
            self.center = 0.5 * self.center + 0.5 * x.mean(0)
        elif self.training:
            self.center.mul_(0.5).add_(0.5 * x.mean(0))
        return self.linear(x - self.center)


class _Centres:
    def __init__(self):
        self.centres = []

    def on_epoch_end(self, model, record):
        self.centres.append(model.module_[0].center.clone())


@pytest.mark.parametrize("mode", ["replaced", "non-persistent"])
def test_early_stopping_restores_the_buffers_of_the_best_epoch(digits, monkeypatch, mode):
    X, y = digits
    scripted = iter([0.05, 0.1, 0.5, 0.3, 0.2, 0.4, 0.35])  # first: before training
    seen = []

    def fake_map_at_r(embedding, labels, **kwargs):
        seen.append((np.array(embedding, copy=True), np.asarray(labels).copy()))
        return next(scripted)

    monkeypatch.setattr(base_module, "map_at_r", fake_map_at_r)
    record = _Centres()
    model = fast(
        TripletEmbedder, network=_Centred(mode), early_stopping=True, n_iter_no_change=3,
        max_iter=20, validation_holdout="classes", learning_rate_init=1e-2, callbacks=[record],
    )  # fmt: skip
    model.fit(X + 3.0, y)
    assert model.n_iter_ == 5
    assert not torch.equal(record.centres[1], record.centres[-1])
    assert torch.equal(model.module_[0].center, record.centres[1])  # epoch 2, the best
    best_embedding, val_labels = seen[2]
    held_out = np.isin(y, np.unique(val_labels))
    np.testing.assert_array_equal(model.transform(X[held_out] + 3.0), best_embedding)


def test_early_stopping_keeps_the_initial_weights_when_no_epoch_beats_them(digits, monkeypatch):
    X, y = digits
    scripted = iter([0.9, 0.5, 0.6, 0.7, 0.8])  # the untrained network scores best
    seen = []

    def fake_map_at_r(embedding, labels, **kwargs):
        seen.append((np.array(embedding, copy=True), np.asarray(labels).copy()))
        return next(scripted)

    monkeypatch.setattr(base_module, "map_at_r", fake_map_at_r)
    model = fast(TripletEmbedder, n_iter_no_change=4, max_iter=20, validation_holdout="classes")
    model.fit(X, y)
    assert [h["score"] for h in model.history_] == [0.5, 0.6, 0.7, 0.8]
    initial_embedding, val_labels = seen[0]
    held_out = np.isin(y, np.unique(val_labels))
    np.testing.assert_array_equal(model.transform(X[held_out]), initial_embedding)
    assert not np.allclose(seen[-1][0], initial_embedding)  # training did change it


def test_early_stopping_auto_needs_two_held_out_classes(digits, monkeypatch):
    X, y = digits
    classes = {"validation_holdout": "classes"}
    # 5 classes: 0.2 x 5 rounds to 1 class, too few to guide; a short fixed budget instead
    few = fast(TripletEmbedder, max_iter=None, **classes).fit(X[y < 5], y[y < 5])
    assert all(h["score"] is None for h in few.history_)
    assert few.n_iter_ == AUTO_MAX_ITER[False] == 5
    held_out = []

    def fake_map_at_r(embedding, labels, **kwargs):
        held_out.append(np.unique(labels))
        return 0.5  # never better than before training

    monkeypatch.setattr(base_module, "map_at_r", fake_map_at_r)
    many = fast(TripletEmbedder, max_iter=None, n_iter_no_change=4, **classes).fit(X, y)
    assert many.n_iter_ == 4  # stopped by validation, long before the cap (AUTO_MAX_ITER[True])
    assert len(held_out) == 5 and all(np.array_equal(h, held_out[0]) for h in held_out)
    assert len(held_out[0]) == 2
    held_out.clear()
    fast(TripletEmbedder, early_stopping=True, max_iter=2, **classes).fit(X[y < 5], y[y < 5])
    assert len(held_out[0]) == 2 and set(held_out[0]) <= set(range(5))  # True: 2 of 5


def test_auto_holdout_validates_on_samples_with_few_classes_and_both_scores_everything(
    digits, monkeypatch
):
    X, y = digits
    scored = []

    def fake_map_at_r(embedding, labels, **kwargs):
        scored.append(np.asarray(labels).copy())
        return 0.5

    monkeypatch.setattr(base_module, "map_at_r", fake_map_at_r)
    few = fast(TripletEmbedder, max_iter=None, n_iter_no_change=2).fit(X[y < 5], y[y < 5])
    assert few.n_iter_ == 2  # validated (and stopped by it), not the short budget
    np.testing.assert_array_equal(np.unique(scored[0]), np.arange(5))  # samples of each class
    scored.clear()
    fast(TripletEmbedder, max_iter=None, n_iter_no_change=2).fit(X, y)  # 10: samples of each
    np.testing.assert_array_equal(np.unique(scored[0]), np.arange(10))
    scored.clear()
    y20 = y + 10 * (np.arange(y.size) % 2)  # 20 classes: 4 held out whole
    fast(TripletEmbedder, max_iter=None, n_iter_no_change=2).fit(X, y20)
    held = np.unique(scored[0])
    assert len(held) == 4
    assert all(np.sum(scored[0] == c) == np.sum(y20 == c) for c in held)
    scored.clear()
    both = fast(TripletEmbedder, max_iter=None, n_iter_no_change=2, validation_holdout="both")
    assert both.fit(X, y).n_iter_ == 2
    held = np.unique(scored[0])
    assert len(held) == 10  # both: all of 2 held-out classes, and samples of the other 8
    counts = np.array([np.sum(scored[0] == c) for c in held])
    train_counts = np.array([np.sum(y == c) for c in held])
    assert np.sum(counts == train_counts) == 2  # the held-out classes are scored whole


def test_validation_holdout_samples_holds_out_part_of_every_class(digits, monkeypatch):
    X, y = digits
    held_out = []

    def fake_map_at_r(embedding, labels, **kwargs):
        held_out.append(np.asarray(labels).copy())
        return 0.5

    monkeypatch.setattr(base_module, "map_at_r", fake_map_at_r)
    model = fast(TripletEmbedder, validation_holdout="samples", n_iter_no_change=2)
    model.fit(X, y)  # "auto": every class has 4+ samples
    labels = held_out[0]
    counts = np.bincount(y)
    np.testing.assert_array_equal(np.unique(labels), np.unique(y))  # every class is in it
    # validation_fraction 0.2 of each class's ~20 samples (at least 2), never all of them
    per_class = np.bincount(labels, minlength=10)
    assert np.all(per_class >= 2) and np.all(per_class <= counts - 2)
    np.testing.assert_array_equal(per_class, np.maximum(2, np.round(0.2 * counts)))


def test_early_stopping_without_a_possible_split(digits):
    X, y = digits
    two_and_few = np.r_[np.flatnonzero(y == 0)[:4], np.flatnonzero(y == 1)[:2]]
    Xs, ys = X[two_and_few], y[two_and_few]  # class 0: 4 samples, class 1: 2
    # "auto" trains without validation where none is possible
    for holdout in ("classes", "samples"):
        model = fast(ArcFaceEmbedder, validation_holdout=holdout, batch_size=8).fit(Xs, ys)
        assert all(h["score"] is None for h in model.history_)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`early_stopping=True` with `validation_holdout`='samples' needs at least 2 "
            "classes with 4 or more samples, got 1. Set early_stopping=False or give more "
            "data."
        ),
    ):
        fast(ArcFaceEmbedder, early_stopping=True, validation_holdout="samples", batch_size=8).fit(
            Xs, ys
        )
    with pytest.raises(
        ValueError,
        match=re.escape(
            "`early_stopping=True` needs a validation set: with 2 classes and "
            "`validation_fraction`=0.2, no class-disjoint split (2+ classes on each side) "
            "nor a split of the samples of classes with 4+ samples leaves 2 classes on each "
            "side."
        ),
    ):
        fast(ArcFaceEmbedder, early_stopping=True, batch_size=8).fit(Xs, ys)


def test_early_stopping_with_few_classes_splits_samples(digits):
    X, y = digits
    mask = y < 3
    model = fast(ArcFaceEmbedder, early_stopping=True, max_iter=2).fit(X[mask], y[mask])
    assert all(h["score"] is not None for h in model.history_)


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (TripletEmbedder, {}),
        (ArcFaceEmbedder, {}),
        (TripletEmbedder, {"validation_holdout": "classes", "early_stopping": True}),
    ],
)
def test_a_warm_start_keeps_the_hold_out_of_the_fit_it_continues(digits, monkeypatch, cls, params):
    # a new hold-out would validate on samples (or whole classes) the first fit trained on
    X, y = digits
    splits = []
    split = base_module.holdout_split

    def recording(*args):
        splits.append(split(*args))
        return splits[-1]

    monkeypatch.setattr(base_module, "holdout_split", recording)
    model = fast(cls, warm_start=True, **params).fit(X, y)
    model.fit(X, y)
    model.fit(X, y)
    (train, validation), *later = splits
    for again_train, again_validation in later:
        np.testing.assert_array_equal(again_validation, validation)
        np.testing.assert_array_equal(again_train, train)
    # a fresh fit with the same random_state draws the same one; another seed another
    clone(model).fit(X, y)
    np.testing.assert_array_equal(splits[-1][1], validation)
    clone(model).set_params(random_state=1).fit(X, y)
    assert not np.array_equal(splits[-1][1], validation)


def test_the_untrained_weights_warning_on_small_data_says_what_trains_more(digits, monkeypatch):
    # below 2 x batch_size samples an epoch is one or two optimiser steps
    X, y = digits
    scripted = iter([0.9, 0.5, 0.6, 0.5])
    monkeypatch.setattr(base_module, "map_at_r", lambda *a, **k: next(scripted))
    model = fast(TripletEmbedder, max_iter=10, n_iter_no_change=3, batch_size=128)
    with pytest.warns(UserWarning, match=re.escape(
        "with 200 samples an epoch is one or two optimiser steps and the held-out score is "
        "coarse: early_stopping=False with max_iter=200 trains on every sample for 200 epochs."
    )):  # fmt: skip
        model.fit(X, y)
