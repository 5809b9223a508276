import numpy as np
import pytest
import torch

from sk_deepmetric._validation import (
    check_class_labels,
    check_embeddings_and_labels,
    check_int,
    check_option,
    check_real,
    did_you_mean,
)


def test_did_you_mean_suggests_closest_name():
    assert did_you_mean("semi_hard", ["batch_hard", "semihard", "all"]) == (
        " Did you mean 'semihard'?"
    )
    assert did_you_mean("zzz", ["batch_hard", "semihard"]) == ""
    assert did_you_mean(3, ["a"]) == ""


def test_check_option():
    assert check_option(None, ["all", None], "miner") is None
    with pytest.raises(ValueError, match=r"`miner` must be one of .* got 'semi'\. Did you mean"):
        check_option("semi", ["batch_hard", "semihard"], "miner")


@pytest.mark.parametrize("bad", [2.0, True, "2", None])
def test_check_int_rejects_non_integers(bad):
    with pytest.raises(ValueError, match=r"`margin` must be an integer, got"):
        check_int(bad, "margin")


def test_check_int_accepts_numpy_integers_and_checks_bounds():
    assert check_int(np.int64(3), "margin", min_value=1) == 3
    with pytest.raises(ValueError, match=r"`margin` must be in the range \[1, inf\], got 0"):
        check_int(0, "margin", min_value=1)


@pytest.mark.parametrize(
    ("value", "closed", "msg"),
    [
        (0.0, "neither", r"range \(0\.0, 90\.0\), got 0\.0"),
        (90.0, "left", r"range \[0\.0, 90\.0\), got 90\.0"),
        (float("nan"), "both", r"must be finite, got nan"),
        ("a", "both", r"must be a real number, got 'a'"),
    ],
)
def test_check_real(value, closed, msg):
    with pytest.raises(ValueError, match=msg):
        check_real(value, "alpha", min_value=0.0, max_value=90.0, closed=closed)
    assert check_real(45, "alpha", min_value=0.0, max_value=90.0, closed=closed) == 45.0


def test_check_embeddings_and_labels():
    _, lab = check_embeddings_and_labels(torch.zeros(3, 2), [0, 1, 1])
    assert lab.dtype == torch.int64
    with pytest.raises(ValueError, match=r"`embeddings` must be a 2-D tensor .* got \(3,\)"):
        check_embeddings_and_labels(torch.zeros(3), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`embeddings` must be a floating-point tensor"):
        check_embeddings_and_labels(torch.zeros(3, 2, dtype=torch.long), [0, 1, 2])
    with pytest.raises(ValueError, match=r"one label per embedding \(3\), got shape \(2,\)"):
        check_embeddings_and_labels(torch.zeros(3, 2), [0, 1])
    with pytest.raises(ValueError, match=r"`labels` must be an integer tensor, got torch.float32"):
        check_embeddings_and_labels(torch.zeros(3, 2), torch.zeros(3))


def test_check_class_labels():
    check_class_labels(torch.tensor([0, 2]), 3)
    with pytest.raises(ValueError, match=r"`labels` must be in 0\.\.2 \(`n_classes`=3\), got"):
        check_class_labels(torch.tensor([0, 3]), 3)
