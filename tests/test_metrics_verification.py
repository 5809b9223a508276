"""Verification, pair and re-identification metrics against loop-over-pairs references.

Each reference counts accepted pairs one by one at every candidate threshold, from the
definitions in the docstrings (NIST SRE / VoxCeleb minDCF, LFW protocol, Market-1501 re-ID).
"""

import itertools
import math
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.preprocessing import FunctionTransformer

import sk_deepmetric.metrics
from sk_deepmetric._retrieval import sample_pairs
from sk_deepmetric.metrics import (
    equal_error_rate,
    make_pairs,
    make_verification_scorer,
    min_dcf,
    pair_scores,
    precision_at_k,
    reidentification_report,
    select_threshold,
    tar_at_far,
    verification_accuracy,
    verification_report,
)

# ---------------------------------------------------------------- loop references


def loop_rates(y, s, t):
    """(FAR, TAR) of accepting ``score >= t``, counted pair by pair."""
    fa = sum(1 for yi, si in zip(y, s) if not yi and si >= t)
    ta = sum(1 for yi, si in zip(y, s) if yi and si >= t)
    n_pos = sum(1 for yi in y if yi)
    return fa / (len(y) - n_pos), ta / n_pos


def loop_roc(y, s):
    """ROC points at +inf and at every distinct score, in decreasing threshold order."""
    thresholds = [math.inf, *sorted(set(s), reverse=True)]
    return [(t, *loop_rates(y, s, t)) for t in thresholds]


def loop_eer(y, s):
    points = loop_roc(y, s)
    for (_, f0, t0), (_, f1, t1) in itertools.pairwise(points):
        g0, g1 = (1 - t0) - f0, (1 - t1) - f1
        if g0 > 0 >= g1:
            return f0 + g0 / (g0 - g1) * (f1 - f0)
    raise AssertionError("the curve always crosses FNR = FPR")


def loop_tar_at_far(y, s, far):
    points = loop_roc(y, s)
    below = [(f, t) for _, f, t in points if f <= far]
    f0, t0 = max(below, key=lambda p: (p[0], p[1]))
    if f0 == far:
        return t0
    f1, t1 = min(((f, t) for _, f, t in points if f > far), key=lambda p: (p[0], p[1]))
    return t0 + (far - f0) * (t1 - t0) / (f1 - f0)


def loop_min_dcf(y, s, p, c_miss=1.0, c_fa=1.0):
    costs = [c_miss * (1 - tar) * p + c_fa * far * (1 - p) for _, far, tar in loop_roc(y, s)]
    return min(costs) / min(c_miss * p, c_fa * (1 - p))


def loop_accuracy(y, s, t):
    return sum(1 for yi, si in zip(y, s) if (si >= t) == bool(yi)) / len(y)


def random_scores(n, seed, separation=1.0, ties=False):
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    y[:2] = [True, False]
    s = rng.normal(size=n) + separation * y
    if ties:
        s = np.round(s, 1)
    return y.astype(int), s


# ---------------------------------------------------------------- EER, TAR@FAR, minDCF


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_metrics_match_loop_references(seed, ties):
    y, s = random_scores(300, seed, ties=ties)
    assert equal_error_rate(y, s) == pytest.approx(loop_eer(y, s), abs=1e-12)
    for far in (1e-3, 0.01, 0.05, 0.3):
        assert tar_at_far(y, s, far=far) == pytest.approx(loop_tar_at_far(y, s, far), abs=1e-12)
    for p in (0.01, 0.05, 0.5):
        assert min_dcf(y, s, p_target=p) == pytest.approx(loop_min_dcf(y, s, p), abs=1e-12)
    assert min_dcf(y, s, c_miss=10, c_fa=1) == pytest.approx(
        loop_min_dcf(y, s, 0.01, 10, 1), abs=1e-12
    )


def test_exact_cases():
    # separable: no error at any rate
    y, s = [1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]
    assert equal_error_rate(y, s) == 0.0
    assert tar_at_far(y, s, far=1e-3) == 1.0
    assert min_dcf(y, s) == 0.0
    # reversed: every same pair below every different one
    assert equal_error_rate(y, [0.1, 0.2, 0.8, 0.9]) == 1.0
    # the crossing between two ROC points: (FAR, FRR) goes (0, 1/2) -> (1/2, 0) at 0.5
    assert equal_error_rate([1, 0, 1, 0], [4.0, 3.0, 2.0, 1.0]) == 0.5
    # FAR 1/4 -> 1/2 at a constant TAR of 1/2 between the second and third different pair
    y, s = [1, 0, 0, 1, 0, 0], [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    assert tar_at_far(y, s, far=0.25) == 0.5
    # between (FAR 0, TAR 1/2) and (FAR 1/4, TAR 1/2): 1/2; a quarter of the way from
    # (FAR 1/2, TAR 1/2) to (FAR 1/2, TAR 1) is on a vertical segment: the top counts
    assert tar_at_far(y, s, far=0.5) == 1.0
    # published normalisation: P_target = 0.5, C = 1 -> min over t of FAR + FRR
    assert min_dcf(y, s, p_target=0.5) == pytest.approx(0.5, abs=1e-15)
    # accepting everything costs C_fa (1 - P_t) / min(...) = 99 here, rejecting all 1
    assert min_dcf([1, 0], [0.0, 1.0]) == 1.0


def test_thresholds_of_eer_and_min_dcf_give_their_rates():
    y, s = random_scores(400, 3)
    eer, threshold = equal_error_rate(y, s, return_threshold=True)
    far, tar = loop_rates(y, s, threshold)
    assert min(far, 1 - tar) <= eer + 1e-12 <= max(far, 1 - tar) + 2e-12
    value, threshold = min_dcf(y, s, p_target=0.05, return_threshold=True)
    far, tar = loop_rates(y, s, threshold)
    assert value == pytest.approx(((1 - tar) * 0.05 + far * 0.95) / 0.05, abs=1e-12)
    # rejecting everything is the best of a useless system: the threshold is +inf
    assert min_dcf([1, 0, 1, 0], [0.0, 1.0, 0.0, 1.0], return_threshold=True) == (1.0, math.inf)


def test_labels_in_minus_one_one_and_booleans_agree():
    y, s = random_scores(100, 4)
    expected = equal_error_rate(y, s)
    assert equal_error_rate(np.where(y == 1, 1, -1), s) == expected
    assert equal_error_rate(y.astype(bool), s) == expected
    assert equal_error_rate(torch.tensor(y), torch.tensor(s)) == expected


def test_verification_report_gathers_the_metrics():
    from sklearn.metrics import roc_auc_score

    y, s = random_scores(200, 5)
    report = verification_report(y, s, far=(0.1, 1e-2), p_target=0.05)
    assert list(report) == [
        "roc_auc",
        "equal_error_rate",
        "eer_threshold",
        "tar_at_far_0.1",
        "tar_at_far_0.01",
        "min_dcf",
        "min_dcf_threshold",
        "n_same",
        "n_different",
    ]
    assert report["roc_auc"] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    expected = equal_error_rate(y, s, return_threshold=True)
    assert (report["equal_error_rate"], report["eer_threshold"]) == expected
    assert report["tar_at_far_0.1"] == tar_at_far(y, s, far=0.1)
    assert (report["min_dcf"], report["min_dcf_threshold"]) == min_dcf(
        y, s, p_target=0.05, return_threshold=True
    )
    assert (report["n_same"], report["n_different"]) == (int(y.sum()), int((1 - y).sum()))
    assert list(verification_report(y, s, far=1e-3))[3] == "tar_at_far_0.001"


@pytest.mark.parametrize(
    "y, s, kwargs, msg",
    [
        (
            [1, 1, 1],
            [0.1, 0.2, 0.3],
            {},
            "`y_true` must hold both same-identity and different-identity pairs, got only "
            "same-identity (1) pairs (3).",
        ),
        (
            [0, -1],
            [0.1, 0.2],
            {},
            "`y_true` must hold 1 for same-identity pairs and 0 (or -1) for different-identity "
            "pairs, got values [-1, 0].",
        ),
        (
            [0, 2],
            [0.1, 0.2],
            {},
            "`y_true` must hold 1 for same-identity pairs and 0 (or -1) for different-identity "
            "pairs, got values [0, 2].",
        ),
        (
            ["same", "other"],
            [0.1, 0.2],
            {},
            "`y_true` must hold 1 for same-identity pairs and 0 (or -1) for different-identity "
            "pairs, got values ['other', 'same'].",
        ),
        (
            [1, 0, 1],
            [0.1, np.nan, np.inf],
            {},
            "`y_score` must be finite, got NaN or infinity in 2 of 3 scores.",
        ),
        (
            [1, 0, 1],
            [0.1, 0.2],
            {},
            "`y_score` must be 1-D with one score per entry of `y_true` (3), got shape (2,).",
        ),
        ([1, 0], ["a", "b"], {}, "`y_score` must be real-valued, got dtype <U1."),
        ([[1, 0]], [0.1, 0.2], {}, "`y_true` must be a non-empty 1-D array, got shape (1, 2)."),
    ],
)
def test_bad_pair_labels_and_scores(y, s, kwargs, msg):
    for metric in (equal_error_rate, tar_at_far, min_dcf, verification_report):
        with pytest.raises(ValueError, match=re.escape(msg)):
            metric(y, s, **kwargs)


def test_object_pair_labels_and_boolean_scores_are_read_as_numbers():
    # an object array of 0/1 (a column of a mixed frame) was refused as "got values [0, 1]",
    # and boolean scores, which roc_curve takes as 0 and 1, or an object array of scores, as
    # "must be real-valued"
    rng = np.random.default_rng(0)
    y = np.arange(30) % 2
    s = rng.random(30) + y
    metrics = (equal_error_rate, tar_at_far, min_dcf, verification_report, select_threshold)
    for metric in metrics:
        expected = metric(y, s)
        assert metric(y.astype(object), s) == expected
        assert metric((2 * y - 1).astype(object), s) == expected
        assert metric(y.astype(bool).astype(object), s) == expected
        assert metric(y, s > 1) == metric(y, (s > 1).astype(np.float64))
        assert metric(y, s.astype(object)) == expected
    options = dict(cv=2, random_state=0)
    expected = verification_accuracy(y, s, **options)
    assert verification_accuracy(y.astype(object), s, **options) == expected
    # what was given is named: strings are not numbers, even "0" and "1"
    for labels, given in [
        (y.astype(str).astype(object), "got values ['0', '1'] (dtype object)."),
        (np.array([1, "a"] * 15, dtype=object), "got values of types int, str."),
    ]:
        msg = (
            "`y_true` must hold 1 for same-identity pairs and 0 (or -1) for different-identity "
            f"pairs, {given}"
        )
        with pytest.raises(ValueError, match=re.escape(msg)):
            equal_error_rate(labels, s)
    msg = "`y_score` must be real-valued, got dtype object holding values of type str."
    with pytest.raises(ValueError, match=re.escape(msg)):
        equal_error_rate(y, np.array(["high", 0.5] * 15, dtype=object))


@pytest.mark.parametrize("far", [0.0, 1.0, 1.5, -0.1, np.nan])
def test_rates_outside_the_open_unit_interval(far):
    y, s = [1, 0], [0.2, 0.1]
    with pytest.raises(ValueError, match=r"`far` must be (in the range \(0.0, 1.0\)|finite)"):
        tar_at_far(y, s, far=far)
    with pytest.raises(ValueError, match=r"`far` must be"):
        verification_report(y, s, far=(0.1, far))
    with pytest.raises(ValueError, match=r"`p_target` must be"):
        min_dcf(y, s, p_target=far)
    with pytest.raises(ValueError, match=r"`target_far` must be"):
        select_threshold(y, s, target_far=far)
    with pytest.raises(ValueError, match=re.escape("`c_fa` must be in the range (0.0, inf)")):
        min_dcf(y, s, c_fa=0)


def test_report_names_a_far_that_is_neither_a_rate_nor_rates():
    with pytest.raises(ValueError, match=r"`far` must be a rate in \(0, 1\) or an iterable"):
        verification_report([1, 0], [0.2, 0.1], far=None)


# ---------------------------------------------------------------- thresholds and LFW accuracy


def loop_best_threshold(y, s):
    """Midpoints between consecutive distinct scores (and the ends), first best accuracy."""
    values = sorted(set(s), reverse=True)
    candidates = [np.nextafter(values[0], np.inf)]
    candidates += [(a + b) / 2 for a, b in itertools.pairwise(values)] + [values[-1]]
    return max(candidates, key=lambda t: loop_accuracy(y, s, t))  # max keeps the first


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
def test_best_accuracy_threshold_matches_loop(seed, ties):
    y, s = random_scores(200, seed, ties=ties)
    threshold = select_threshold(y, s)
    assert threshold == pytest.approx(loop_best_threshold(y, s), abs=1e-12)
    best = max(loop_accuracy(y, s, t) for t in [*s, np.inf])
    assert loop_accuracy(y, s, threshold) == best


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("target", [0.01, 0.05, 0.29, 0.5])
def test_far_threshold_is_the_loosest_within_the_target(target, ties):
    y, s = random_scores(500, 7, ties=ties)
    threshold = select_threshold(y, s, target_far=target)
    assert loop_rates(y, s, threshold)[0] <= target
    # no lower threshold keeps the rate: the next different-identity score below breaks it
    below = max(si for yi, si in zip(y, s) if not yi and si < threshold)
    assert loop_rates(y, s, below)[0] > target
    # it accepts every same-identity pair above that score (the most any threshold within
    # the target accepts), halfway between it and the lowest score of any pair above it
    assert loop_rates(y, s, threshold)[1] == loop_rates(y, s, math.nextafter(below, math.inf))[1]
    above = [si for si in s if si > below]
    assert threshold == pytest.approx((min(above) + below) / 2, abs=1e-12)


def test_far_threshold_accepts_the_same_identity_pairs_among_the_rejected_scores():
    # FAR 1/3 allows the 0.9 different-identity pair: 0.15 also accepts the same-identity
    # pair at 0.2 (halfway between 0.5, the first idea, would not)
    y, s = [0, 0, 1, 0], [0.9, 0.1, 0.2, 0.05]
    threshold = select_threshold(y, s, target_far=0.34)
    assert threshold == pytest.approx(0.15, abs=1e-12)
    assert loop_rates(y, s, threshold) == (pytest.approx(1 / 3), 1.0)


def test_equally_accurate_thresholds_compare_exactly():
    # rejecting every pair and accepting the scores >= 7 are both 15 of 23 correct; the
    # accuracies as rates (tpr * n_pos + (1 - fpr) * n_neg) / n differ in the last bit
    y = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 1, 1, 0, 1, 0, 1, 1]
    s = [6, 0, 11, 3, 5, 2, 1, 10, 6, 4, 7, 2, 11, 7, 8, 10, 9, 8, 5, 2, 6, 7, 1]
    assert loop_accuracy(y, s, 7) == loop_accuracy(y, s, math.inf) == 15 / 23
    threshold = select_threshold(y, s)
    assert threshold > 11 and loop_accuracy(y, s, threshold) == 15 / 23  # the strictest


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_thresholds_decide_alike_in_the_precision_of_the_scores(dtype):
    """NumPy 2 and torch compare a Python float with float32 scores in float32: a threshold
    built in float64 just above a score would round onto it and accept it."""
    a = dtype(0.5)
    b = np.nextafter(a, dtype(1))  # the next score up: no float64 midpoint survives
    cases = [
        # the top score is a different-identity pair that FAR 0.1 of 3 must reject
        ([0, 1, 1, 0, 0], [0.9, 0.8, 0.7, 0.1, 0.2], {"target_far": 0.1}, [0, 0, 0, 0, 0]),
        ([0, 1, 0, 0, 1], [a, b, 0.1, 0.2, 0.9], {"target_far": 0.1}, [0, 1, 0, 0, 1]),
        ([0, 1, 0, 0, 1], [a, b, 0.1, 0.2, 0.9], {}, [0, 1, 0, 0, 1]),
        ([0, 0, 0, 1], [0.9, 0.8, 0.7, 0.1], {}, [0, 0, 0, 0]),  # reject every pair
    ]
    for y, s, kwargs, accepted in cases:
        scores = np.array(s, dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # FAR 0.1 of 3 pairs
            threshold = select_threshold(y, scores, **kwargs)
        assert float(dtype(threshold)) == threshold  # a value of the scores' dtype
        np.testing.assert_array_equal(scores >= threshold, np.array(accepted, dtype=bool))
        np.testing.assert_array_equal(scores.astype(np.float64) >= threshold, accepted)
        tensor = torch.from_numpy(scores)
        np.testing.assert_array_equal((tensor >= threshold).numpy(), accepted)


def test_bfloat16_score_tensors_are_read_exactly_and_thresholds_decide_in_bfloat16():
    # bfloat16, which NumPy has no type for, was a TypeError from tensor.numpy()
    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    scores = torch.from_numpy(rng.random(40) + y).to(torch.bfloat16)
    same = scores.float()  # every bfloat16 is a float32
    for metric in (equal_error_rate, tar_at_far, min_dcf, verification_report):
        assert metric(y, scores) == metric(y, same)
    # the threshold is a bfloat16 value, which decides as the float32 one does
    threshold = select_threshold(y, scores)
    assert float(torch.tensor(threshold).to(torch.bfloat16)) == threshold
    accepted = (same >= select_threshold(y, same)).numpy()
    np.testing.assert_array_equal((scores >= threshold).numpy(), accepted)
    options = dict(cv=2, random_state=0)
    assert verification_accuracy(y, scores, **options) == verification_accuracy(y, same, **options)
    # torch compares bfloat16 scores with a Python float in bfloat16: the float64 midpoint of
    # two adjacent scores rounds onto the lower one, so the threshold is the upper one
    a = torch.tensor(0.5, dtype=torch.bfloat16)
    b = torch.nextafter(a, torch.tensor(1.0, dtype=torch.bfloat16))
    scores = torch.stack([a, b, *torch.tensor([0.1, 0.2, 0.9], dtype=torch.bfloat16)])
    threshold = select_threshold([0, 1, 0, 0, 1], scores)
    assert threshold == float(b)
    np.testing.assert_array_equal((scores >= threshold).numpy(), [0, 1, 0, 0, 1])


@pytest.mark.parametrize("argument", ["y_true", "y_score"])
def test_sparse_pair_labels_and_scores_are_refused_naming_the_argument(argument):
    import scipy.sparse

    y, s = np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.8, 0.2])
    args = {"y_true": y, "y_score": s}
    value = args[argument]
    for sparse, msg in [
        (
            torch.from_numpy(value).to_sparse(),
            f"`{argument}` must be a dense tensor, got layout torch.sparse_coo; convert it "
            "with `.to_dense()`.",
        ),
        (
            scipy.sparse.csr_matrix(value),
            f"`{argument}` must be dense, got a scipy.sparse csr_matrix; convert it with "
            "`.toarray()`.",
        ),
    ]:
        for metric in (equal_error_rate, select_threshold, verification_report):
            with pytest.raises(ValueError, match=re.escape(msg)):
                metric(**{**args, argument: sparse})


def test_far_threshold_with_too_few_pairs_warns():
    y, s = [1, 0, 0, 1, 0], [0.9, 0.8, 0.3, 0.5, 0.1]
    msg = "A false-accept rate of 0.1 needs at least 10 different-identity pairs"
    with pytest.warns(UserWarning, match=msg):
        threshold = select_threshold(y, s, target_far=0.1)
    assert threshold > 0.8 and loop_rates(y, s, threshold) == (0.0, 0.5)


def loop_lfw(y, s, folds):
    accuracies = []
    for f in sorted(set(folds)):
        train = [i for i in range(len(y)) if folds[i] != f]
        test = [i for i in range(len(y)) if folds[i] == f]
        t = loop_best_threshold([y[i] for i in train], [s[i] for i in train])
        accuracies.append(loop_accuracy([y[i] for i in test], [s[i] for i in test], t))
    mean = sum(accuracies) / len(accuracies)
    std = math.sqrt(sum((a - mean) ** 2 for a in accuracies) / (len(accuracies) - 1))
    return mean, std


def test_lfw_accuracy_matches_loop_with_given_folds():
    y, s = random_scores(300, 8)
    folds = np.arange(300) % 10
    mean, std = verification_accuracy(y, s, cv=folds)
    expected = loop_lfw(list(y), list(s), list(folds))
    assert mean == pytest.approx(expected[0], abs=1e-12)
    assert std == pytest.approx(expected[1], abs=1e-12)


def test_lfw_accuracy_with_stratified_folds_is_seeded():
    y, s = random_scores(300, 9)
    first = verification_accuracy(y, s, random_state=0)
    assert verification_accuracy(y, s, random_state=0) == first
    assert 0.6 < first[0] < 0.8  # one standard deviation apart: about 0.69
    msg = "`cv` (200) must not exceed the number of pairs of either kind"
    with pytest.raises(ValueError, match=re.escape(msg)):
        verification_accuracy(y, s, cv=200)
    with pytest.raises(ValueError, match=re.escape("`cv` must be an int or one fold label")):
        verification_accuracy(y, s, cv=[0, 1])
    with pytest.raises(ValueError, match="complement must hold pairs of both kinds"):
        verification_accuracy(y, s, cv=y)  # folds that are the labels themselves


# ---------------------------------------------------------------- pairs


def test_all_pairs_match_loop():
    labels = np.array(["b", "a", "b", "c", "a"])
    pairs, same = make_pairs(labels)
    expected = [(i, j) for i in range(5) for j in range(i + 1, 5)]
    assert [tuple(p) for p in pairs.tolist()] == expected
    assert same.tolist() == [int(labels[i] == labels[j]) for i, j in expected]
    assert pairs.dtype == same.dtype == np.int64


def test_balanced_pairs_are_distinct_valid_and_seeded():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 30, size=500)
    pairs, same = make_pairs(labels, n_pairs=1001, random_state=1)
    assert pairs.shape == (1001, 2) and same.sum() == 500
    assert (pairs[:, 0] < pairs[:, 1]).all()
    assert len({tuple(p) for p in pairs.tolist()}) == 1001
    np.testing.assert_array_equal(same, labels[pairs[:, 0]] == labels[pairs[:, 1]])
    again = make_pairs(labels, n_pairs=1001, random_state=1)
    np.testing.assert_array_equal(again[0], pairs)
    assert not np.array_equal(make_pairs(labels, n_pairs=1001, random_state=2)[0], pairs)


def test_balanced_pairs_exhausting_both_kinds_are_all_pairs():
    # classes of 3 and 6: 3 + 15 = 18 same-class pairs and 18 different-class pairs
    labels = np.array([1] * 3 + [0] * 6)[np.random.default_rng(0).permutation(9)]
    pairs, same = make_pairs(labels, n_pairs=36, random_state=0)
    all_pairs, all_same = make_pairs(labels)
    np.testing.assert_array_equal(pairs, all_pairs)
    np.testing.assert_array_equal(same, all_same)
    with pytest.raises(ValueError, match=re.escape("asks for 19 same-class pairs, but the")):
        make_pairs(labels, n_pairs=38)


def test_balanced_pairs_from_many_samples_without_listing_them():
    labels = np.arange(200_000) % 7  # 2.9e9 same-class pairs
    pairs, same = make_pairs(labels, n_pairs=10_000, random_state=0)
    np.testing.assert_array_equal(same, labels[pairs[:, 0]] == labels[pairs[:, 1]])
    assert same.sum() == 5000
    msg = "All pairs of 200000 samples are 19,999,900,000, more than make_pairs enumerates"
    with pytest.raises(ValueError, match=re.escape(msg)):
        make_pairs(labels)


def test_filled_pairs_take_every_pair_of_the_rarer_kind():
    # classes 0, 0, 1, 2, 3, 3, 3, 4: 1 + 3 = 4 same-class pairs of 28; take 20 pairs
    few_same = np.array([0, 0, 1, 2, 3, 3, 3, 4])
    few_different = np.array([0] * 7 + [1])  # 21 same-class pairs, 7 different-class ones
    every = [(i, j) for i in range(8) for j in range(i + 1, 8)]
    for codes, n_same in ((few_same, 4), (few_different, 13)):
        pairs, same = sample_pairs(codes, 20, np.random.default_rng(0), fill=True)
        drawn = [tuple(p) for p in pairs.tolist()]
        assert len(set(drawn)) == 20 and set(drawn) <= set(every)
        assert same.tolist() == [int(codes[i] == codes[j]) for i, j in drawn]
        assert same.sum() == n_same
        rarer = min(n_same, 20 - n_same)
        kind = int(n_same == rarer)
        assert sum(1 for i, j in every if (codes[i] == codes[j]) == kind) == rarer
    # where both kinds have their share, filling draws what make_pairs draws
    codes = np.arange(30) % 3
    plain = sample_pairs(codes, 21, np.random.default_rng(5))
    filled = sample_pairs(codes, 21, np.random.default_rng(5), fill=True)
    np.testing.assert_array_equal(plain[0], filled[0])
    np.testing.assert_array_equal(plain[1], filled[1])


def test_make_pairs_errors():
    with pytest.raises(ValueError, match=re.escape("`labels` must be 1-D with at least 2")):
        make_pairs([0])
    with pytest.raises(ValueError, match=re.escape("`n_pairs` must be an integer, got 10.0")):
        make_pairs([0, 1, 0], n_pairs=10.0)


@pytest.mark.parametrize(
    "labels, msg",
    [
        ([0.0, np.nan, np.nan, 1.0], "`labels` must not hold NaN or infinity, got nan."),
        ([0.0, np.inf, 1.0, 1.0], "`labels` must not hold NaN or infinity, got inf."),
        (np.array(["a", math.nan, math.nan, "b"], dtype=object), "`labels` must not hold NaN."),
        (
            np.array([1, "a", 1, "a"], dtype=object),
            "`labels` must hold labels that sort against each other (numbers, or strings), "
            "got values of types int, str.",
        ),
    ],
)
def test_make_pairs_refuses_the_labels_the_retrieval_metrics_refuse(labels, msg):
    # NaN != NaN: two samples of unknown class must not become a same-class pair
    for n_pairs in (None, 2):
        with pytest.raises(ValueError, match=re.escape(msg)):
            make_pairs(labels, n_pairs=n_pairs)
    with pytest.raises(ValueError, match=re.escape(msg)):
        precision_at_k(np.eye(4), labels)
    scorer = make_verification_scorer(distance="euclidean")
    with pytest.raises(ValueError, match=re.escape(msg.replace("`labels`", "`y`"))):
        scorer(PCA(n_components=1).fit(np.eye(4)), np.eye(4), labels)


def loop_pair_scores(x, pairs, distance):
    out = []
    for i, j in pairs:
        a, b = x[i], x[j]
        if distance == "cosine":
            out.append(float(a @ b) / math.sqrt(float(a @ a) * float(b @ b)))
        else:
            sq = float(((a - b) ** 2).sum())
            out.append(-(sq if distance == "squared_euclidean" else math.sqrt(sq)))
    return np.array(out)


@pytest.mark.parametrize("distance", ["cosine", "euclidean", "squared_euclidean"])
def test_pair_scores_match_loop(distance):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    pairs, _ = make_pairs(np.arange(40) % 4)
    expected = loop_pair_scores(x, pairs, distance)
    np.testing.assert_allclose(pair_scores(x, pairs, distance=distance), expected, atol=1e-12)
    stacked = np.stack([x[pairs[:, 0]], x[pairs[:, 1]]], axis=1)
    np.testing.assert_allclose(pair_scores(stacked, distance=distance), expected, atol=1e-12)
    chunked = pair_scores(torch.tensor(x), pairs, distance=distance, chunk_size=7)
    np.testing.assert_allclose(chunked, expected, atol=1e-12)


def test_pair_scores_errors():
    x = np.zeros((4, 3))
    with pytest.raises(ValueError, match=re.escape("`pairs` must index rows of `embeddings`")):
        pair_scores(x, [[0, 4]])
    with pytest.raises(ValueError, match=re.escape("integer array of shape (n_pairs, 2)")):
        pair_scores(x, [0, 1])
    with pytest.raises(ValueError, match=re.escape("integer row indices, got dtype float64")):
        pair_scores(x, [[0.0, 1.0]])
    msg = "Without `pairs`, `embeddings` must have shape (n_pairs, 2, n_components)"
    with pytest.raises(ValueError, match=re.escape(msg)):
        pair_scores(x)
    with pytest.raises(ValueError, match=re.escape("one component, got shape (0, 2, 3)")):
        pair_scores(np.empty((0, 2, 3)))
    with pytest.raises(ValueError, match=re.escape("`device` must be 'auto', 'cpu'")):
        pair_scores(x, [[0, 1]], device="gpu")
    with pytest.raises(ValueError, match=re.escape("`embeddings` must be finite")):
        pair_scores(np.full((2, 2), np.nan), [[0, 1]])
    with pytest.raises(ValueError, match=re.escape("`distance` must be one of")):
        pair_scores(x, [[0, 1]], distance="manhattan")


# ---------------------------------------------------------------- re-identification


def loop_reid(q, q_id, q_cam, g, g_id, g_cam, ranks, distance):
    cmc = {k: [] for k in ranks}
    aps = []
    for i in range(len(q)):
        pairs = [(0, 1 + j) for j in range(len(g))]
        similarity = loop_pair_scores(np.vstack([q[i : i + 1], g]), pairs, distance)
        order = sorted(range(len(g)), key=lambda j: (-similarity[j], j))
        if q_cam is not None:
            order = [j for j in order if not (g_id[j] == q_id[i] and g_cam[j] == q_cam[i])]
        good = [g_id[j] == q_id[i] for j in order]
        if not any(good):
            continue
        for k in ranks:
            cmc[k].append(float(any(good[:k])))
        hits = [r for r, is_good in enumerate(good, start=1) if is_good]
        aps.append(sum((n + 1) / r for n, r in enumerate(hits)) / len(hits))
    out = {f"cmc_at_{k}": float(np.mean(v)) for k, v in cmc.items()}
    return out | {"map": float(np.mean(aps)), "n_valid_queries": len(aps)}


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
@pytest.mark.parametrize("cameras", [False, True])
def test_reid_matches_loop(distance, cameras):
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(30, 4)), rng.normal(size=(80, 4))
    q_id, g_id = rng.integers(0, 10, 30), rng.integers(0, 12, 80)
    q_cam = rng.integers(0, 3, 30) if cameras else None
    g_cam = rng.integers(0, 3, 80) if cameras else None
    ranks = (1, 5, 10)
    expected = loop_reid(q, q_id, q_cam, g, g_id, g_cam, ranks, distance)
    options = dict(query_groups=q_cam, gallery_groups=g_cam, distance=distance)
    report = reidentification_report(q, q_id, g, g_id, **options)
    assert report.keys() == expected.keys()
    for key in expected:
        assert report[key] == pytest.approx(expected[key], abs=1e-12)
    chunked = reidentification_report(q, q_id, g, g_id, chunk_size=4, **options)
    assert chunked == pytest.approx(report, abs=1e-15)


def test_reid_ties_go_to_the_lower_gallery_index():
    # both gallery items at the same distance: the wrong one (index 0) comes first
    report = reidentification_report([[0.0]], [1], [[1.0], [-1.0]], [0, 1], ranks=(1, 2))
    assert report == {"cmc_at_1": 0.0, "cmc_at_2": 1.0, "map": 0.5, "n_valid_queries": 1}


def test_reid_errors():
    q, g = np.zeros((2, 3)), np.ones((3, 3))
    with pytest.raises(ValueError, match="No query has a gallery item of its identity"):
        reidentification_report(q, [0, 1], g, [2, 2, 2], ranks=1)
    with pytest.raises(ValueError, match="No query has a gallery item of its identity"):
        reidentification_report(
            q, [0, 0], g, [0, 0, 0], query_groups=[1, 1], gallery_groups=[1, 1, 1], ranks=(1, 2)
        )
    with pytest.raises(ValueError, match=re.escape("pass both or neither")):
        reidentification_report(q, [0, 1], g, [0, 1, 1], query_groups=[0, 0], ranks=1)
    msg = "`ranks` (4) must not exceed the number of gallery items (3)."
    with pytest.raises(ValueError, match=re.escape(msg)):
        reidentification_report(q, [0, 1], g, [0, 1, 1], ranks=(1, 4))
    msg = "`gallery_embeddings` must have as many columns as `query_embeddings` (3), got 2."
    with pytest.raises(ValueError, match=re.escape(msg)):
        reidentification_report(q, [0, 1], g[:, :2], [0, 1, 1], ranks=1)
    with pytest.raises(ValueError, match=re.escape("`gallery_labels` must be 1-D")):
        reidentification_report(q, [0, 1], g, [0, 1], ranks=1)


def test_reid_refuses_labels_or_groups_of_two_kinds():
    # 1 and "1" were one identity (or camera): concatenating them cast 1 to "1"
    q, g = np.zeros((2, 3)), np.ones((3, 3))
    msg = (
        "`query_labels` and `gallery_labels` must hold labels of one kind (numbers, or "
        "strings), got numbers in `query_labels` and strings in `gallery_labels`."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        reidentification_report(q, [1, 2], g, ["1", "2", "2"], ranks=1)
    msg = (
        "`query_groups` and `gallery_groups` must hold labels of one kind (numbers, or "
        "strings), got strings in `query_groups` and numbers in `gallery_groups`."
    )
    with pytest.raises(ValueError, match=re.escape(msg)):
        reidentification_report(
            q, [1, 2], g, [1, 2, 2], query_groups=["1", "1"], gallery_groups=[1, 2, 2], ranks=1
        )


def test_reid_keeps_integer_groups_of_two_dtypes_apart():
    # int64 and uint64 cameras were cast to float64, where 2**62 and 2**62 + 1 are one: the
    # query's nearest match, from another camera, was removed as if from its own
    camera = 2**62
    report = reidentification_report(
        [[0.0]],
        [0],
        [[0.0], [1.0]],
        [0, 0],
        query_groups=np.array([camera], dtype=np.int64),
        gallery_groups=np.array([camera + 1, camera], dtype=np.uint64),
        ranks=1,
    )
    assert report == {"cmc_at_1": 1.0, "map": 1.0, "n_valid_queries": 1}


@pytest.mark.parametrize("device", ["cuda:99", "gpu", "meta"])
def test_reid_names_a_bad_device_as_the_other_metrics_do(device):
    q, g = np.zeros((2, 3)), np.ones((3, 3))
    with pytest.raises(ValueError) as expected:
        precision_at_k(q, [0, 0], device=device)
    assert "`device`" in str(expected.value)
    with pytest.raises(ValueError, match=re.escape(str(expected.value))):
        reidentification_report(q, [0, 1], g, [0, 1, 1], ranks=1, device=device)


def test_reid_on_the_auto_device():
    # query 0 finds its item at rank 2 (AP 1/2), query 1 its two at ranks 2 and 3 (AP 7/12)
    q, g = np.array([[0.0], [4.0]]), np.array([[1.0], [3.0], [6.0]])
    report = reidentification_report(q, [0, 1], g, [1, 0, 1], ranks=(1, 2), device="auto")
    assert report == {
        "cmc_at_1": 0.0, "cmc_at_2": 1.0, "map": pytest.approx(13 / 24, abs=1e-15),
        "n_valid_queries": 2,
    }  # fmt: skip


# ---------------------------------------------------------------- scorers


def test_verification_scorer_in_a_class_disjoint_grid_search():
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(12), 10)
    X = np.hstack([rng.normal(size=(120, 2)) + y[:, None], rng.normal(scale=5, size=(120, 3))])
    scoring = {
        "eer": make_verification_scorer(),
        "tar": make_verification_scorer("tar_at_far", far=0.05, distance="euclidean"),
        "dcf": make_verification_scorer("min_dcf", p_target=0.05, n_pairs=200),
    }
    search = GridSearchCV(
        PCA(random_state=0), {"n_components": [1, 4]}, scoring=scoring, refit="eer",
        cv=GroupKFold(n_splits=3),
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # class-disjoint folds: no warning
        search.fit(X, y, groups=y)
    # by hand for the first candidate and fold
    train, test = next(GroupKFold(n_splits=3).split(X, y, groups=y))
    Z = PCA(n_components=1, random_state=0).fit(X[train]).transform(X[test])
    pairs, same = make_pairs(y[test])
    scores = pair_scores(Z, pairs)
    assert search.cv_results_["split0_test_eer"][0] == -equal_error_rate(same, scores)
    pairs, same = make_pairs(y[test], n_pairs=200, random_state=0)
    expected = -min_dcf(same, pair_scores(Z, pairs), p_target=0.05)
    assert search.cv_results_["split0_test_dcf"][0] == expected
    assert repr(scoring["tar"]) == (
        "make_verification_scorer(metric='tar_at_far', far=0.05, distance='euclidean')"
    )


def scorer_pairs(monkeypatch, scorer, X, y):
    """The score, the pairs and their labels that ``scorer`` used on ``(X, y)``."""
    used = []

    def recorded(embeddings, pairs, **kwargs):
        used.append(pairs)
        return pair_scores(embeddings, pairs, **kwargs)

    monkeypatch.setattr(sk_deepmetric.metrics, "pair_scores", recorded)
    score = scorer(FunctionTransformer().fit(X), X, y)
    (pairs,) = used
    return score, pairs, (y[pairs[:, 0]] == y[pairs[:, 1]]).astype(int)


def test_verification_scorer_draws_a_million_pairs_from_a_fold_too_large_to_list(monkeypatch):
    # 4,473 samples have 10,001,628 pairs, more than make_pairs lists; that was a NaN score
    rng = np.random.default_rng(0)
    y = rng.integers(0, 8, 4473)  # ~1.25 million same-class pairs: half a million drawn
    X = rng.normal(size=(4473, 2)) + 0.05 * y[:, None]
    with pytest.raises(ValueError, match="more than make_pairs enumerates"):
        make_pairs(y)
    score, pairs, same = scorer_pairs(monkeypatch, make_verification_scorer(), X, y)
    expected, expected_same = make_pairs(y, n_pairs=1_000_000, random_state=0)
    np.testing.assert_array_equal(pairs, expected)
    np.testing.assert_array_equal(same, expected_same)
    assert score == -equal_error_rate(same, pair_scores(X, pairs))
    assert -0.5 < score < 0  # the classes are apart, a little


def test_verification_scorer_fills_a_large_fold_short_of_same_class_pairs(monkeypatch):
    # classes of two samples (and one of one): 2,236 same-class pairs, all taken
    y = np.arange(4473) // 2
    X = np.random.default_rng(0).normal(size=(4473, 2)) + y[:, None] % 2
    scorer = make_verification_scorer("tar_at_far", far=0.01)
    score, pairs, same = scorer_pairs(monkeypatch, scorer, X, y)
    assert pairs.shape == (1_000_000, 2)
    assert np.unique(pairs[:, 0] * 4473 + pairs[:, 1]).size == 1_000_000  # distinct
    assert (pairs[:, 0] < pairs[:, 1]).all() and pairs.max() < 4473
    assert {tuple(p) for p in pairs[same == 1].tolist()} == {(i, i + 1) for i in range(0, 4472, 2)}
    assert score == tar_at_far(same, pair_scores(X, pairs), far=0.01)


def test_verification_scorer_warns_on_classes_seen_in_training():
    from sk_deepmetric import TripletEmbedder

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), np.arange(40) % 4
    model = TripletEmbedder(max_iter=1, n_components=4, hidden_layer_sizes=(8,)).fit(X, y)
    with pytest.warns(UserWarning, match="given samples of 4 classes the estimator was trained"):
        make_verification_scorer()(model, X, y)
    msg = "`metric` must be one of ['equal_error_rate', 'tar_at_far', 'min_dcf'], got 'eer'."
    with pytest.raises(ValueError, match=re.escape(msg)):
        make_verification_scorer("eer")
    with pytest.raises(ValueError, match="needs the labels `y`"):
        make_verification_scorer()(model, X)


def test_report_keys_keep_close_rates_apart():
    y, s = random_scores(4000, 3)
    report = verification_report(y, s, far=(0.0012345678, 0.0012345679, 1e-3, 1e-5))
    assert [k for k in report if k.startswith("tar_at_far_")] == [
        "tar_at_far_0.0012345678",
        "tar_at_far_0.0012345679",
        "tar_at_far_0.001",
        "tar_at_far_1e-05",
    ]


def test_float32_and_0d_rates_are_read_as_written():
    # float32 0.001 is 0.0010000000474974513: the key and the TAR are those of 0.001
    y, s = random_scores(4000, 3)
    expected = verification_report(y, s, far=(1e-2, 1e-3))
    report = verification_report(y, s, far=np.array([1e-2, 1e-3], dtype=np.float32))
    assert report == expected
    for far in (1e-2, 1e-3):
        tar = expected[f"tar_at_far_{far}"]
        assert tar == pytest.approx(loop_tar_at_far(y, s, far), abs=1e-12)
        assert tar_at_far(y, s, far=np.float32(far)) == tar
        assert tar_at_far(y, s, far=np.array(far, dtype=np.float32)) == tar
        scorer = make_verification_scorer("tar_at_far", far=np.float32(far))
        assert (
            repr(scorer)
            == f"make_verification_scorer(metric='tar_at_far', far={far}, distance='cosine')"
        )
    # a rate given twice, in any precision, is one entry; 0-d arrays are rates
    twice = verification_report(y, s, far=[1e-2, np.float32(1e-2), np.array(1e-3), 1e-3])
    assert twice == expected
    one = verification_report(y, s, far=np.array(1e-3, dtype=np.float32))
    assert [k for k in one if k.startswith("tar_at_far_")] == ["tar_at_far_0.001"]
    assert one["tar_at_far_0.001"] == expected["tar_at_far_0.001"]


def test_tar_at_a_far_below_one_negative_pair_warns_that_it_extrapolates():
    # 4 negative pairs: the first false accept is already FAR 0.25, so FAR 0.01 is read
    # between the curve's first two points
    y = np.array([1, 1, 1, 0, 0, 0, 0])
    s = np.array([0.9, 0.8, 0.3, 0.7, 0.4, 0.2, 0.1])
    from sklearn.exceptions import UndefinedMetricWarning

    with pytest.warns(UndefinedMetricWarning, match=re.escape(
        "TAR at FAR=0.01 is read from 4 different-identity pairs, fewer than 1 / far = 100: "
        "the curve's first false accept is already a rate of 0.25"
    )):  # fmt: skip
        tar = tar_at_far(y, s, far=0.01)
    # ROC points (FAR, TAR): (0, 2/3) then (0.25, 2/3): 2/3 between them
    assert tar == pytest.approx(2 / 3, rel=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tar_at_far(y, s, far=0.25)  # 4 x 0.25 = 1 pair: a point of the curve
