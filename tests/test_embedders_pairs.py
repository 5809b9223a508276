"""ContrastivePairsEmbedder: learning from pairs labelled similar or not.

References: the loss as a loop over pairs (and gradcheck in float64); distances recomputed
from ``transform`` of each side; thresholds from ``select_threshold``. scikit-learn's
estimator checks feed 2-D ``X``, which a pairs estimator does not take (its tags say so):
the checks that need no data run in test_common.py, and their pair-shaped counterparts here.
"""

import math
import pickle
import re

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score

from sk_deepmetric import ContrastivePairsEmbedder
from sk_deepmetric.embedders._pairs import _GivenPairsContrastiveLoss, _pair_groups
from sk_deepmetric.metrics import make_pairs, select_threshold

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FAST = {"hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 32, "random_state": 0}


@pytest.fixture(scope="module")
def data():
    """Pairs of samples of 12 Gaussian classes; the estimator only sees the pairs."""
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=3.0, size=(12, 10))
    y = np.repeat(np.arange(12), 15)
    X = (centres[y] + rng.normal(size=(180, 10))).astype(np.float32)
    index, same = make_pairs(y, n_pairs=600, random_state=0)
    return X, y, X[index], same


@pytest.fixture(scope="module")
def fitted(data):
    _, _, pairs, same = data
    return ContrastivePairsEmbedder(max_iter=20, **FAST).fit(pairs, same)


# ---------------------------------------------------------------- the loss


def loop_loss(emb, same, pos_margin, neg_margin, distance):
    pos, neg = [], []
    for (a, b), s in zip(emb.tolist(), same.tolist()):
        a, b = np.array(a), np.array(b)
        if distance == "cosine":
            d = 1 - float(a @ b) / math.sqrt(float(a @ a) * float(b @ b))
        else:
            sq = float(((a - b) ** 2).sum())
            d = sq if distance == "squared_euclidean" else math.sqrt(sq)
        (pos if s else neg).append(max(d - pos_margin, 0.0) if s else max(neg_margin - d, 0.0))
    pos, neg = [v for v in pos if v > 0], [v for v in neg if v > 0]
    return (sum(pos) / len(pos) if pos else 0.0) + (sum(neg) / len(neg) if neg else 0.0)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_loss_matches_loop_and_gradcheck(distance):
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(12, 2, 3, generator=gen, dtype=torch.float64) * 0.5
    same = torch.tensor([1, 0] * 6)
    loss = _GivenPairsContrastiveLoss(0.1, 0.8, distance)
    expected = loop_loss(emb.numpy(), same.numpy(), 0.1, 0.8, distance)
    assert float(loss(emb, same)) == pytest.approx(expected, abs=1e-12)
    emb.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda e: loss(e, same), (emb,))
    # a pair at distance zero has a zero (not NaN) gradient
    zero = torch.zeros(2, 2, 3, dtype=torch.float64, requires_grad=True)
    _GivenPairsContrastiveLoss(0.1, 0.8, "euclidean")(zero, torch.tensor([1, 0])).backward()
    assert torch.isfinite(zero.grad).all()


def test_loss_checks_its_shapes():
    msg = "`embeddings` must have shape (n_pairs, 2, n_components) and `labels` one label"
    with pytest.raises(ValueError, match=re.escape(msg)):
        _GivenPairsContrastiveLoss(0.0, 1.0, "euclidean")(torch.zeros(4, 3), torch.zeros(4))


# ---------------------------------------------------------------- fitting from pairs alone


def test_fits_from_pairs_alone_and_separates_new_pairs(data, fitted):
    X, y, _, _ = data
    # pairs never seen in training (another draw), of the same unseen-by-label samples
    index, same = make_pairs(y, n_pairs=400, random_state=1)
    assert fitted.score(X[index], same) > 0.9
    assert fitted.n_iter_ >= 1 and fitted.history_[0]["score"] is not None  # held-out AUC
    assert fitted.transform(X).shape == (180, 8)
    assert fitted.classes_.tolist() == [0, 1]


def test_predictions_decision_and_distances_agree(data, fitted):
    _, _, pairs, same = data
    d = fitted.pair_distance(pairs)
    first, second = fitted.transform(pairs[:, 0]), fitted.transform(pairs[:, 1])
    np.testing.assert_allclose(d, np.linalg.norm(first - second, axis=1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(fitted.pair_score(pairs), -d)
    np.testing.assert_array_equal(fitted.decision_function(pairs), fitted.threshold_ - d)
    np.testing.assert_array_equal(fitted.predict(pairs), (d <= fitted.threshold_).astype(int))
    embedded = clone(fitted).fit_transform(pairs, same)
    assert embedded.shape == (600, 2, 8)
    # the same rows at other positions of the padded chunks: equal to float32 rounding
    np.testing.assert_allclose(embedded[:, 0], first, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target_far", [None, 0.05])
def test_calibrate_threshold_is_select_threshold_on_the_distances(data, fitted, target_far):
    X, y, _, _ = data
    index, same = make_pairs(y, n_pairs=300, random_state=2)
    model = pickle.loads(pickle.dumps(fitted)).set_params(target_far=target_far)
    assert model.calibrate_threshold(X[index], same) is model
    d = model.pair_distance(X[index])
    assert model.threshold_ == -select_threshold(same, -d, target_far=target_far)
    if target_far is not None:
        assert np.mean(d[same == 0] <= model.threshold_) <= target_far
    assert model.set_threshold(0.25).threshold_ == 0.25
    assert model.predict(X[index]).tolist() == (d <= 0.25).astype(int).tolist()


def test_labels_minus_one_one_and_booleans(data):
    _, _, pairs, same = data
    signed = ContrastivePairsEmbedder(max_iter=2, **FAST).fit(pairs, 2 * same - 1)
    assert signed.classes_.tolist() == [-1, 1]
    assert set(signed.predict(pairs).tolist()) <= {-1, 1}
    flags = ContrastivePairsEmbedder(max_iter=2, **FAST).fit(pairs, same.astype(bool))
    assert flags.predict(pairs).dtype == bool
    np.testing.assert_array_equal(flags.transform(pairs[:, 0]), signed.transform(pairs[:, 0]))


def test_images_with_a_cnn():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(40, 2, 8, 8)).astype(np.float32)
    same = np.arange(40) % 2
    model = ContrastivePairsEmbedder(network="cnn", max_iter=1, n_components=4, random_state=0)
    model.fit(images, same)
    assert model.input_shape_ == (1, 8, 8)
    assert model.transform(images[:, 0]).shape == (40, 4)
    assert model.predict(images).shape == (40,)


class _ScalesInPlace(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(10, 8)

    def forward(self, x):
        return self.linear(x.div_(2.0))


def test_a_network_you_pass_is_checked_on_samples_and_leaves_the_pairs_alone(data):
    _, _, pairs, same = data
    pairs = np.ascontiguousarray(pairs, dtype=np.float32)
    before = pairs.copy()
    model = ContrastivePairsEmbedder(network=_ScalesInPlace(), max_iter=1, **FAST)
    model.fit(pairs, same)
    np.testing.assert_array_equal(pairs, before)
    assert model.transform(pairs[:, 0]).shape == (len(pairs), 8)
    with pytest.raises(ValueError, match=r"maps a batch of X to shape \(2, 8\), but the"):
        ContrastivePairsEmbedder(network=_ScalesInPlace(), **{**FAST, "n_components": 4}).fit(
            pairs, same
        )


def test_no_early_stopping_calibrates_on_the_training_pairs(data):
    _, _, pairs, same = data
    model = ContrastivePairsEmbedder(early_stopping=False, max_iter=3, **FAST).fit(pairs, same)
    assert model.n_iter_ == 3 and all(h["score"] is None for h in model.history_)
    d = model.pair_distance(pairs)
    assert model.threshold_ == -select_threshold(same, -d)


def test_partial_fit_and_warm_start(data):
    _, _, pairs, same = data
    model = ContrastivePairsEmbedder(**FAST)
    model.partial_fit(pairs, same).partial_fit(pairs, same)
    assert model.n_iter_ == 2
    warm = ContrastivePairsEmbedder(max_iter=2, early_stopping=False, warm_start=True, **FAST)
    warm.fit(pairs, same).fit(pairs, same)
    assert warm.n_iter_ == 4


def test_grid_search_on_pairs(data):
    _, _, pairs, same = data
    search = GridSearchCV(
        ContrastivePairsEmbedder(max_iter=2, **FAST), {"neg_margin": [0.5, 1.0]}, cv=2
    ).fit(pairs, same)
    assert len(search.cv_results_["params"]) == 2
    scores = cross_val_score(ContrastivePairsEmbedder(max_iter=2, **FAST), pairs, same, cv=2)
    assert scores.shape == (2,) and (scores > 0.5).all()


# ---------------------------------------------------------------- scikit-learn's checks, on pairs


def test_fit_is_reproducible_and_returns_self(data):
    _, _, pairs, same = data
    model = ContrastivePairsEmbedder(max_iter=3, **FAST)
    params = model.get_params()
    assert model.fit(pairs, same) is model
    assert model.get_params() == params  # fit does not change the parameters
    first = (model.transform(pairs[:, 0]), model.threshold_)
    model.fit(pairs, same)
    np.testing.assert_array_equal(model.transform(pairs[:, 0]), first[0])
    assert model.threshold_ == first[1]
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(pairs), model.predict(pairs))


def test_dtypes_order_and_subsets(data, fitted):
    _, _, pairs, same = data
    order = np.random.default_rng(0).permutation(len(pairs))
    np.testing.assert_allclose(
        fitted.decision_function(pairs)[order], fitted.decision_function(pairs[order])
    )
    np.testing.assert_allclose(
        fitted.decision_function(pairs[:7]), fitted.decision_function(pairs)[:7]
    )
    for dtype in (np.float64, np.int64):
        assert fitted.predict(pairs.astype(dtype)).shape == (600,)
    readonly = pairs.copy()
    readonly.setflags(write=False)
    assert ContrastivePairsEmbedder(max_iter=1, **FAST).fit(readonly, same).n_iter_ == 1
    assert fitted.predict(pairs.tolist()).shape == (600,)  # nested lists


def test_torch_tensors_of_pairs(data, fitted):
    # np.asarray met them first: torch refused a tensor that requires grad (the output of
    # another network), and NumPy has no bfloat16
    _, _, pairs, same = data
    tracked = torch.tensor(pairs, requires_grad=True)
    model = ContrastivePairsEmbedder(max_iter=1, **FAST)
    expected = clone(model).fit(pairs, same).transform(pairs[:, 0])
    np.testing.assert_array_equal(model.fit(tracked, same).transform(pairs[:, 0]), expected)
    halved = torch.tensor(pairs).bfloat16()
    exact = halved.float().numpy()  # bfloat16 values are float32 values
    assert model.fit(halved, same).n_iter_ == 1
    for method in ("predict", "decision_function", "pair_distance"):
        predict = getattr(fitted, method)
        np.testing.assert_array_equal(predict(tracked), predict(pairs))
        np.testing.assert_array_equal(predict(halved), predict(exact))
    calibrated = pickle.loads(pickle.dumps(fitted))
    threshold = calibrated.calibrate_threshold(tracked, same).threshold_
    assert threshold == calibrated.calibrate_threshold(pairs, same).threshold_


def test_unfitted():
    model = ContrastivePairsEmbedder()
    pairs = np.zeros((2, 2, 3))
    for method in ("predict", "decision_function", "pair_distance", "pair_score", "transform"):
        with pytest.raises(NotFittedError):
            getattr(model, method)(pairs)
    with pytest.raises(NotFittedError):
        model.calibrate_threshold(pairs, [0, 1])


@pytest.mark.parametrize(
    "X, y, msg",
    [
        (
            np.zeros((6, 4)),
            [0, 1] * 3,
            "ContrastivePairsEmbedder takes pairs: X of shape (n_pairs, 2, n_features), or "
            "(n_pairs, 2, *input_shape), got shape (6, 4).",
        ),
        (np.zeros((6, 3, 4)), [0, 1] * 3, "got shape (6, 3, 4)."),
        (
            np.zeros((6, 2, 4)),
            [0, 2] * 3,
            "`y` must hold 1 for same-identity pairs and 0 (or -1) for different-identity "
            "pairs, got values [0, 2].",
        ),
        (
            np.zeros((6, 2, 4)),
            [1] * 6,
            "`y` must hold both same-identity and different-identity pairs, got only "
            "same-identity (1) pairs (6).",
        ),
        (np.zeros((6, 2, 4)), [0, 1] * 2, "inconsistent numbers of samples: [6, 4]"),
        (np.full((6, 2, 4), np.nan), [0, 1] * 3, "Input X contains NaN"),
        (np.full((6, 2, 4), np.inf), [0, 1] * 3, "Input X contains infinity"),
        (np.zeros((0, 2, 4)), [], "Found array with 0 sample(s)"),
        (np.zeros((6, 2, 4)), None, "requires y to be passed, but the target y is None"),
    ],
)
def test_bad_input(X, y, msg):
    with pytest.raises(ValueError, match=re.escape(msg)):
        ContrastivePairsEmbedder(max_iter=1).fit(X, y)


def test_tags_say_binary():
    # same identity or not: a third label is refused (test_bad_input), as the tags say
    from sklearn.utils import get_tags

    assert get_tags(ContrastivePairsEmbedder()).classifier_tags.multi_class is False


def test_bad_input_after_fit(fitted):
    with pytest.raises(ValueError, match=re.escape("is expecting 10 features as input")):
        fitted.predict(np.zeros((3, 2, 9)))
    with pytest.raises(ValueError, match=re.escape("is expecting 10 features as input")):
        fitted.transform(np.zeros((3, 9)))
    with pytest.raises(ValueError, match=re.escape("(2, 10) per sample") + ".*X\\[:, 0\\]"):
        fitted.transform(np.zeros((3, 2, 10)))
    with pytest.raises(ValueError, match=re.escape("(2, 9) per sample") + "[^X]*$"):
        fitted.transform(np.zeros((3, 2, 9)))
    with pytest.raises(ValueError, match=re.escape("takes pairs: X of shape")):
        fitted.predict(np.zeros((3, 10)))
    with pytest.raises(TypeError, match="takes dense pairs, got a sparse matrix"):
        from scipy import sparse

        fitted.predict(sparse.csr_matrix(np.zeros((3, 10))))
    with pytest.raises(ValueError, match=re.escape("`threshold` must be a real number")):
        fitted.set_threshold("far")
    with pytest.warns(UserWarning, match="A column-vector y was passed"):
        clone(fitted).set_params(max_iter=1).fit(np.zeros((4, 2, 10)), [[0], [1], [0], [1]])


def test_held_out_pairs_are_whole_groups_of_linked_samples(data):
    X, y, pairs, same = data
    groups = _pair_groups(pairs, same)
    # samples are told apart by their values: the rows of X
    sample = np.unique(pairs.reshape(1200, -1), axis=0, return_inverse=True)[1].reshape(600, 2)
    np.testing.assert_array_equal(X[np.unique(sample)].shape, (180, 10))
    index, _ = make_pairs(y, n_pairs=600, random_state=0)  # the fixture's pairs
    # 25 similar pairs per class of 15 samples: a class is one or a few linked groups,
    # and a group never spans two classes
    assert 12 <= len(np.unique(groups)) <= 20
    class_of = {}
    for g, label in zip(groups.ravel(), y[index].ravel()):
        assert class_of.setdefault(g, label) == label
    np.testing.assert_array_equal(groups[:, 0] == groups[:, 1], same == 1)
    model = ContrastivePairsEmbedder(**FAST)
    model._rng = np.random.default_rng(0)
    train, held_out = model._split_pairs(pairs, same, partial=False)
    # no sample, and no group, on both sides; pairs between the sides are left out
    assert not set(sample[train].ravel()) & set(sample[held_out].ravel())
    assert not set(groups[train].ravel()) & set(groups[held_out].ravel())
    assert len(np.unique(groups[held_out])) == round(0.2 * len(np.unique(groups)))
    assert set(same[held_out]) == set(same[train]) == {0, 1}


def test_too_few_groups_to_hold_out():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(5, 2, 3))  # 5 pairs of distinct samples: 9 groups
    msg = (
        "`early_stopping=True` holds out whole groups of samples linked by similar pairs "
        "(9 groups here), and needs at least 2 groups on each side with similar and "
        "dissimilar pairs in both; set early_stopping=False or give more pairs."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        ContrastivePairsEmbedder(early_stopping=True).fit(X, [1, 0, 0, 0, 0])
    # "auto" trains on them all and calibrates on them
    model = ContrastivePairsEmbedder(max_iter=1).fit(X, [1, 0, 0, 0, 0])
    assert model.history_[0]["score"] is None


# ---------------------------------------------------------------- calibration and faults


def test_best_accuracy_threshold_weighs_the_pairs_to_a_prior():
    from sk_deepmetric._retrieval import pair_threshold

    # similar pairs score 0.9, 0.8, 0.5, 0.4; dissimilar ones 0.6, 0.3. Accepting down to 0.4
    # is right 5 times in 6 (TPR 1, TNR 1/2); weighted to half similar pairs it scores
    # 1/2 + 1/4 = 3/4, as accepting down to 0.8 does (TPR 1/2, TNR 1), the stricter one
    y, s = [1, 1, 1, 1, 0, 0], [0.9, 0.8, 0.5, 0.4, 0.6, 0.3]
    assert pair_threshold(y, s, None) == pytest.approx(0.35, abs=1e-12)
    assert pair_threshold(y, s, None, prior=0.5) == pytest.approx(0.7, abs=1e-12)
    assert pair_threshold(y, s, None, prior=4 / 6) == pair_threshold(y, s, None)


class _HeldOutPairs:
    def on_train_begin(self, estimator):
        self.pairs, self.same = estimator._held_out_pairs


def test_threshold_from_held_out_pairs_is_weighted_to_the_share_of_similar_pairs(data):
    _, _, pairs, same = data
    seen = _HeldOutPairs()
    model = ContrastivePairsEmbedder(max_iter=3, callbacks=[seen], **FAST).fit(pairs, same)
    held = seen.same.astype(bool)
    # whole groups held out keep few of the dissimilar pairs
    assert held.mean() > same.mean() + 0.2
    d = model.pair_distance(seen.pairs)
    prior = same.mean()

    def weighted_accuracy(t):
        return prior * (d[held] <= t).mean() + (1 - prior) * (d[~held] > t).mean()

    candidates = np.concatenate([[-np.inf], np.sort(d)])  # accept the pairs up to each
    best = max(weighted_accuracy(t) for t in candidates)
    assert weighted_accuracy(model.threshold_) == pytest.approx(best, abs=1e-12)
    # weighing the dissimilar pairs up can only make the threshold stricter
    assert model.threshold_ <= -select_threshold(held, -d)


class _FailAt:
    """A callback that raises in epoch ``epoch``."""

    def __init__(self, epoch, error=RuntimeError):
        self.epoch, self.error = epoch, error

    def on_epoch_end(self, estimator, record):
        if record["epoch"] == self.epoch:
            raise self.error("stop")


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_a_fault_after_an_epoch_calibrates_the_weights_it_keeps(data, error):
    _, _, pairs, same = data
    params = {**FAST, "early_stopping": False, "max_iter": 10}
    first = ContrastivePairsEmbedder(distance="cosine", **params).fit(pairs, same)
    stale = first.threshold_
    refit = first.set_params(distance="squared_euclidean", callbacks=[_FailAt(3, error)])
    if error is KeyboardInterrupt:  # the loop keeps epoch 2, warns and returns
        with pytest.warns(RuntimeWarning, match="interrupted during epoch 3"):
            refit.fit(pairs, same)
    else:
        with pytest.raises(RuntimeError, match="stop"):
            refit.fit(pairs, same)
    assert refit.n_iter_ == 2
    expected = -select_threshold(same, -refit.pair_distance(pairs))
    assert refit.threshold_ == expected != stale
    # a fresh fit that fails in epoch 2 keeps epoch 1, with its threshold
    fresh = ContrastivePairsEmbedder(callbacks=[_FailAt(2)], **params)
    with pytest.raises(RuntimeError, match="stop"):
        fresh.fit(pairs, same)
    assert fresh.n_iter_ == 1
    assert fresh.threshold_ == -select_threshold(same, -fresh.pair_distance(pairs))


def test_an_interrupted_calibration_leaves_the_estimator_unfitted(data, monkeypatch):
    _, _, pairs, same = data
    model = ContrastivePairsEmbedder(max_iter=2, **FAST).fit(pairs, same)

    def interrupted(self, pairs, same, prior=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(ContrastivePairsEmbedder, "_calibrate", interrupted)
    for warm_start in (False, True):  # weights without their threshold are not a model
        with pytest.raises(KeyboardInterrupt):
            clone(model).set_params(warm_start=warm_start).fit(pairs, same)
        with pytest.raises(KeyboardInterrupt):
            model.set_params(warm_start=warm_start).fit(pairs, same)
        with pytest.raises(NotFittedError):
            model.predict(pairs)
        monkeypatch.undo()
        model.fit(pairs, same)
        monkeypatch.setattr(ContrastivePairsEmbedder, "_calibrate", interrupted)


def test_fit_transform_under_pandas_output_is_transform_of_the_samples(data):
    import pandas as pd

    _, _, pairs, same = data
    model = ContrastivePairsEmbedder(max_iter=2, **FAST).set_output(transform="pandas")
    out = model.fit_transform(pairs, same)
    assert isinstance(out, pd.DataFrame) and out.shape == (1200, 8)
    samples = model.transform(pairs.reshape(1200, -1))
    pd.testing.assert_frame_equal(out, samples)
    default = clone(model).set_output(transform="default").fit_transform(pairs, same)
    np.testing.assert_array_equal(default, out.to_numpy().reshape(600, 2, 8))


def test_a_warm_start_keeps_the_held_out_groups(data, monkeypatch):
    # a new hold-out would validate on pairs the first fit trained on
    _, _, pairs, same = data
    splits = []
    split = ContrastivePairsEmbedder._split_pairs

    def recording(self, *args):
        splits.append(split(self, *args))
        return splits[-1]

    monkeypatch.setattr(ContrastivePairsEmbedder, "_split_pairs", recording)
    model = ContrastivePairsEmbedder(max_iter=2, warm_start=True, **FAST)
    model.fit(pairs, same).fit(pairs, same)
    (train, held_out), (again_train, again_held_out) = splits
    assert held_out is not None
    np.testing.assert_array_equal(again_held_out, held_out)
    np.testing.assert_array_equal(again_train, train)


def test_a_fit_whose_epochs_never_beat_the_start_says_it_kept_it(data, monkeypatch):
    import sklearn.metrics

    _, _, pairs, same = data
    scripted = iter([0.9, 0.5, 0.6, 0.5])  # the untrained network's ROC AUC is never beaten
    monkeypatch.setattr(sklearn.metrics, "roc_auc_score", lambda *a, **k: next(scripted))
    model = ContrastivePairsEmbedder(max_iter=10, n_iter_no_change=3, **FAST)
    with pytest.warns(UserWarning, match=re.escape(
        "ContrastivePairsEmbedder: none of the 3 epochs of this fit improved the validation "
        "score of its starting weights (the untrained network's), so early stopping kept them."
    )) as record:  # fmt: skip
        model.fit(pairs, same)
    assert model.n_iter_ == 3
    # no advice about validation_holdout, which this class does not have
    assert str(record[0].message).endswith(
        "try another learning_rate_init or early_stopping=False."
    )


def test_early_stopping_true_holds_out_at_most_all_groups_but_two():
    # 8 groups at validation_fraction=0.9: 6 held out, 2 trained on (was an error)
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(8), 10)
    X = (rng.normal(scale=3.0, size=(8, 6))[y] + rng.normal(size=(80, 6))).astype(np.float32)
    index, same = make_pairs(y, n_pairs=400, random_state=0)
    model = ContrastivePairsEmbedder(
        early_stopping=True, validation_fraction=0.9, max_iter=1, **FAST
    )
    train, held_out = model.fit(X[index], same)._split_pairs(X[index], same, False)
    assert held_out is not None and train.size > 0


def test_score_reads_labels_as_fit_does(fitted, data):
    # 1 for similar; 0, -1 or False for dissimilar, whichever convention fit was given
    _, _, pairs, same = data
    expected = np.mean((fitted.decision_function(pairs) >= 0) == (same == 1))
    for labels in (same, np.where(same == 1, 1, -1), same.astype(bool)):
        assert fitted.score(pairs, labels) == pytest.approx(expected, abs=1e-12)
    weights = np.linspace(1.0, 2.0, same.size)
    correct = (fitted.decision_function(pairs) >= 0) == (same == 1)
    weighted = float(np.sum(weights * correct) / np.sum(weights))
    assert fitted.score(pairs, same, sample_weight=weights) == pytest.approx(weighted, abs=1e-12)
    with pytest.raises(ValueError, match=r"got values \[0, 2\]"):
        fitted.score(pairs, np.where(same == 1, 2, 0))


def test_ragged_pairs_name_x():
    pairs = [[np.zeros(4), np.zeros(3)]] * 10
    msg = "takes pairs of samples of one shape, as an array of shape (n_pairs, 2, ...); X could"
    with pytest.raises(ValueError, match=re.escape(msg)):
        ContrastivePairsEmbedder(max_iter=1).fit(pairs, [0, 1] * 5)
