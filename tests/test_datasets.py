"""The generated data sets: their parameter checks, and series that stay finite."""

import re
import warnings

import numpy as np
import pytest

from sk_deepmetric.datasets import _MAX_WARP, _warp_time, make_arcs, make_signals


def test_generated_datasets_refuse_fewer_samples_than_classes():
    with pytest.raises(ValueError, match=r"`n_samples` \(5\) must be at least `n_classes` \(10\)"):
        make_arcs(n_samples=5, n_classes=10)
    with pytest.raises(ValueError, match="`n_samples` must be an integer >= 10"):
        make_signals(5, 10)
    _, y = make_arcs(n_samples=10, n_classes=10, random_state=0)
    assert len(np.unique(y)) == 10


@pytest.mark.parametrize("motif_length", [2, 17, 4.0, None])
def test_make_signals_motifs_are_three_samples_to_the_length(motif_length):
    # a Hann window of 2 samples is [0, 0]: such motifs would carry no class signal
    if motif_length is None:
        X, _ = make_signals(20, 2, length=16, random_state=0)  # default: max(4, 16 // 6)
        assert X.shape == (20, 1, 16)
        return
    message = (
        "`motif_length` must be an integer in [3, length=16] (a Hann window of 2 samples is "
        f"zero), got {motif_length!r}."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        make_signals(20, 2, length=16, motif_length=motif_length)


@pytest.mark.parametrize("motif_length", [3, 16])
def test_make_signals_accepts_the_motif_lengths_at_the_bounds(motif_length):
    # the shortest, 3, has a Hann window of [0, 1, 0]: a spike, but not nothing
    X, _ = make_signals(20, 2, length=16, motif_length=motif_length, random_state=0)
    assert X.shape == (20, 1, 16) and np.isfinite(X).all()


@pytest.mark.parametrize("warp", [-0.1, 10.5, 1e308, np.inf, np.nan, True, "0.2"])
def test_make_signals_refuses_a_warp_outside_its_range(warp):
    message = f"`warp` must be a real number in [0, {_MAX_WARP}], got {warp!r}."
    with pytest.raises(ValueError, match=re.escape(message)):
        make_signals(20, 2, warp=warp)


@pytest.mark.parametrize("length", [8, 128])
def test_make_signals_at_the_largest_warp_is_finite(length):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid value on the way
        for seed in range(5):
            X, _ = make_signals(100, 2, length=length, warp=_MAX_WARP, random_state=seed)
            assert np.isfinite(X).all()


def test_the_time_warp_stays_finite_past_floating_point_range():
    # exp(1e6 * z) overflows for any z > 0.001: the log speed is clipped, so that the warped
    # series still takes its values between neighbouring samples of the original
    X = np.random.default_rng(0).standard_normal((50, 2, 32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _warp_time(X, np.random.default_rng(1), 1e6)
    assert np.isfinite(out).all()
    # linear interpolation, low + frac * (high - low) with frac in [0, 1], stays within the
    # series' range but for its three roundings, each at most eps of max |X|
    slack = 3 * np.finfo(np.float64).eps * np.abs(X).max()
    assert np.all(out >= X.min(axis=2, keepdims=True) - slack)
    assert np.all(out <= X.max(axis=2, keepdims=True) + slack)
