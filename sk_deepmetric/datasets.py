"""Data sets for trying the embedders offline: generated, or made from scikit-learn's digits.

- :func:`make_signals` draws labelled time series in the spirit of scikit-learn's
  ``make_classification``: what identifies a class is a few short waveforms (motifs), which
  occur at random positions, under a random warp of time, a random amplitude and noise, so
  that comparing two series point by point says little and a shift-invariant network can
  do much better.
- :func:`make_arcs` draws tabular classes that only a non-linear metric tells apart.
- :func:`load_moved_digits` is scikit-learn's bundled digits, randomly shifted and rotated.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from ._validation import check_random_state

__all__ = ["load_moved_digits", "make_arcs", "make_signals"]


#: Largest ``warp`` of :func:`make_signals`: the standard deviation of the log local speed.
_MAX_WARP = 10
#: Bound on the log local speed: a series' cumulative time, up to ``length * exp(600)``,
#: stays finite in float64 for any length.
_LOG_SPEED_LIMIT = 600.0


def _smooth_noise(rng: np.random.Generator, n: int, length: int, width: float) -> np.ndarray:
    """``(n, length)`` smooth random curves of unit standard deviation (white noise blurred
    by a Gaussian of standard deviation ``width`` samples)."""
    half = int(np.ceil(3 * width))
    taps = np.exp(-0.5 * (np.arange(-half, half + 1) / max(width, 1e-9)) ** 2)
    white = rng.standard_normal((n, length + 2 * half))
    # each output sample is the dot product of a window of the white noise with the taps
    windows = np.lib.stride_tricks.sliding_window_view(white, 2 * half + 1, axis=1)
    curves = windows @ taps
    return curves / curves.std(axis=1, keepdims=True)


def make_signals(
    n_samples: int = 600,
    n_classes: int = 6,
    *,
    n_channels: int = 1,
    length: int = 128,
    n_motifs: int = 2,
    motif_length: int | None = None,
    warp: float = 0.2,
    noise: float = 0.5,
    shuffle: bool = True,
    random_state=None,
):
    """Generate labelled signals whose classes are defined by motifs at random positions.

    Each class owns ``n_motifs`` motifs: smooth random waveforms of ``motif_length``
    samples under a Hann window, each on a channel drawn at random. A series of the class
    is, on each channel, a slow random baseline plus Gaussian noise of standard deviation
    ``noise``, to which each of the class's motifs is added once, at a position drawn
    uniformly along the series and with an amplitude drawn uniformly in [1.5, 4.5]. The
    whole series is then resampled along a smooth random warp of time (a local speed of
    ``exp(warp * z)``, ``z`` a smooth standard normal curve). Motif shapes are independent
    across classes, so classes unseen in training are new motifs, not new combinations.

    Parameters
    ----------
    n_samples : int, default=600
        Number of series, split as evenly as possible among the classes.
    n_classes : int, default=6
        Number of classes.
    n_channels : int, default=1
        Channels of each series (a multichannel sensor, electrodes, axes of a motion
        sensor).
    length : int, default=128
        Samples per series.
    n_motifs : int, default=2
        Motifs per class.
    motif_length : int, default=None
        Samples per motif, in [3, ``length``] (a Hann window of 2 samples is zero); None
        means ``length // 6`` (at least 4).
    warp : float, default=0.2
        Standard deviation of the log local speed of the random time warp, in [0, 10]; 0
        for none. At 1 the speed already varies about e-fold either way; the upper bound
        keeps ``exp(warp * z)`` within floating point range.
    noise : float, default=0.5
        Standard deviation of the white noise (a motif's peak amplitude is about 2 to 6).
    shuffle : bool, default=True
        Shuffle the samples; otherwise they come grouped by class.
    random_state : int, RandomState instance or None, default=None
        Seeds the draws.

    Returns
    -------
    X : ndarray of shape (n_samples, n_channels, length), dtype float32
    y : ndarray of shape (n_samples,)
        Class labels ``0 .. n_classes - 1``.

    Examples
    --------
    >>> from sk_deepmetric.datasets import make_signals
    >>> X, y = make_signals(60, 3, n_channels=2, length=50, random_state=0)
    >>> X.shape, sorted(set(y.tolist()))
    ((60, 2, 50), [0, 1, 2])
    """
    _check_arguments(n_samples, n_classes, n_channels, length, n_motifs, warp, noise)
    if motif_length is None:
        motif_length = max(4, length // 6)
    if not isinstance(motif_length, Integral) or not 3 <= motif_length <= length:
        raise ValueError(
            f"`motif_length` must be an integer in [3, length={length}] (a Hann window of 2 "
            f"samples is zero), got {motif_length!r}."
        )
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    rng = np.random.default_rng(seed)
    y = np.arange(n_samples) % n_classes
    shapes = _smooth_noise(rng, n_classes * n_motifs, motif_length, motif_length / 8)
    shapes = (shapes * np.hanning(motif_length)).reshape(n_classes, n_motifs, motif_length)
    motif_channels = rng.integers(n_channels, size=(n_classes, n_motifs))

    X = noise * rng.standard_normal((n_samples, n_channels, length))
    X += 0.5 * _smooth_noise(rng, n_samples * n_channels, length, length / 6).reshape(X.shape)
    rows = np.arange(n_samples)[:, None]
    for m in range(n_motifs):
        start = rng.integers(0, length - motif_length + 1, size=n_samples)
        amplitude = rng.uniform(1.5, 4.5, size=(n_samples, 1))
        X[rows, motif_channels[y, m][:, None], start[:, None] + np.arange(motif_length)] += (
            amplitude * shapes[y, m]
        )
    X = _warp_time(X, rng, warp)
    if shuffle:
        order = rng.permutation(n_samples)
        X, y = X[order], y[order]
    return X.astype(np.float32), y


def _warp_time(X: np.ndarray, rng: np.random.Generator, warp: float) -> np.ndarray:
    """Resample each series (all its channels alike) along a smooth random monotone warp."""
    n, _, length = X.shape
    if warp == 0 or length < 2:
        return X
    # warp <= _MAX_WARP keeps the exponent far inside float64's range for any z drawn in
    # practice; the clip guards the rest (an almost constant curve has a huge z) and leaves
    # every other value, and so every other series, as it is.
    log_speed = warp * _smooth_noise(rng, n, length, length / 8)
    speed = np.exp(np.clip(log_speed, -_LOG_SPEED_LIMIT, _LOG_SPEED_LIMIT))
    time = np.cumsum(speed, axis=1)
    time = (time - time[:, :1]) / (time[:, -1:] - time[:, :1]) * (length - 1)
    left = np.minimum(np.floor(time).astype(int), length - 2)
    frac = (time - left)[:, None, :]
    gather = np.broadcast_to(left[:, None, :], X.shape)
    low = np.take_along_axis(X, gather, axis=2)
    high = np.take_along_axis(X, gather + 1, axis=2)
    return low + frac * (high - low)


def _check_arguments(n_samples, n_classes, n_channels, length, n_motifs, warp, noise):
    for name, value, low in (
        ("n_classes", n_classes, 2),
        ("n_samples", n_samples, n_classes if isinstance(n_classes, Integral) else 2),
        ("n_channels", n_channels, 1),
        ("length", length, 8),
        ("n_motifs", n_motifs, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    if isinstance(noise, bool) or not isinstance(noise, Real) or not 0 <= noise < np.inf:
        raise ValueError(f"`noise` must be a finite real number >= 0, got {noise!r}.")
    if isinstance(warp, bool) or not isinstance(warp, Real) or not 0 <= warp <= _MAX_WARP:
        raise ValueError(f"`warp` must be a real number in [0, {_MAX_WARP}], got {warp!r}.")


def make_arcs(
    n_samples: int = 3000,
    n_classes: int = 100,
    *,
    n_planes: int = 8,
    n_noise: int = 8,
    spread: float = 0.05,
    random_state=None,
):
    """Generate classes told apart only by a non-linear function of the features.

    Class ``c`` has a radius ``r[c, j]``, uniform in [0.5, 2], in each of ``n_planes``
    hidden planes. A sample of it lies in plane ``j`` at radius ``r[c, j] (1 + spread *
    z)`` (``z`` standard normal) and at an angle drawn uniformly from a half circle,
    independently per plane and sample: the angles are a nuisance every class shares, as
    pose is for faces. ``n_noise`` standard normal features join the ``2 * n_planes`` plane
    coordinates, and a random rotation mixes them all. What identifies a class (its radii)
    is the same function of the input for every class, including classes unseen in
    training, and no linear map computes it.

    Parameters
    ----------
    n_samples : int, default=3000
        Number of samples, split evenly among the classes (class ``i % n_classes`` for
        sample ``i``).
    n_classes : int, default=100
    n_planes : int, default=8
        Hidden planes, each holding one radius per class.
    n_noise : int, default=8
        Features that carry no class information.
    spread : float, default=0.05
        Relative standard deviation of a sample's radius around its class's.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (n_samples, 2 * n_planes + n_noise)
    y : ndarray of shape (n_samples,)

    Examples
    --------
    >>> from sk_deepmetric.datasets import make_arcs
    >>> X, y = make_arcs(200, 10, random_state=0)
    >>> X.shape
    (200, 24)
    """
    for name, value, low in (
        ("n_classes", n_classes, 2),
        ("n_samples", n_samples, 2),
        ("n_planes", n_planes, 1),
        ("n_noise", n_noise, 0),
    ):
        if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
            raise ValueError(f"`{name}` must be an integer >= {low}, got {value!r}.")
    if isinstance(spread, bool) or not isinstance(spread, Real) or not 0 <= spread < np.inf:
        raise ValueError(f"`spread` must be a finite real number >= 0, got {spread!r}.")
    if n_samples < n_classes:
        raise ValueError(
            f"`n_samples` ({n_samples}) must be at least `n_classes` ({n_classes}): one "
            "sample per class or more."
        )
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    rng = np.random.default_rng(seed)
    radii = rng.uniform(0.5, 2.0, size=(n_classes, n_planes))
    y = np.arange(n_samples) % n_classes
    r = radii[y] * (1 + spread * rng.standard_normal((n_samples, n_planes)))
    angle = rng.uniform(-np.pi / 2, np.pi / 2, size=(n_samples, n_planes))
    planes = np.stack([r * np.cos(angle), r * np.sin(angle)], axis=2).reshape(n_samples, -1)
    Z = np.hstack([planes, rng.standard_normal((n_samples, n_noise))])
    rotation, _ = np.linalg.qr(rng.standard_normal((Z.shape[1], Z.shape[1])))
    return Z @ rotation, y


def load_moved_digits(*, max_shift: int = 2, max_rotation: float = 20.0, random_state=None):
    """scikit-learn's 8 x 8 digits on a 12 x 12 canvas, randomly shifted and rotated.

    Each image (intensities divided by 16, so in [0, 1]) is padded by 2 pixels on every
    side, rotated about its centre by an angle drawn uniformly within ``max_rotation``
    degrees either way (bilinear), and shifted by a whole number of pixels drawn
    uniformly within ``max_shift`` along each axis. Comparing such images pixel by pixel
    says little; a network that is insensitive to small shifts and rotations does better.

    Parameters
    ----------
    max_shift : int, default=2
        Largest shift, in pixels, along each axis (at most 2, the padding).
    max_rotation : float, default=20.0
        Largest rotation, in degrees.
    random_state : int, RandomState instance or None, default=None

    Returns
    -------
    X : ndarray of shape (1797, 144)
        Flattened 12 x 12 images; use ``input_shape=(1, 12, 12)`` with ``network="cnn"``.
    y : ndarray of shape (1797,)

    Examples
    --------
    >>> from sk_deepmetric.datasets import load_moved_digits
    >>> X, y = load_moved_digits(random_state=0)
    >>> X.shape
    (1797, 144)
    """
    from scipy import ndimage
    from sklearn.datasets import load_digits

    if (
        isinstance(max_shift, bool)
        or not isinstance(max_shift, Integral)
        or not 0 <= max_shift <= 2
    ):
        raise ValueError(f"`max_shift` must be an integer in [0, 2], got {max_shift!r}.")
    if not isinstance(max_rotation, Real) or not 0 <= max_rotation <= 180:
        raise ValueError(
            f"`max_rotation` must be a real number in [0, 180], got {max_rotation!r}."
        )
    seed = check_random_state(random_state).randint(np.iinfo(np.int32).max)
    rng = np.random.default_rng(seed)
    X, y = load_digits(return_X_y=True)
    images = np.pad(X.reshape(-1, 8, 8) / 16.0, ((0, 0), (2, 2), (2, 2)))
    shifts = rng.integers(-max_shift, max_shift + 1, size=(len(X), 2))
    angles = rng.uniform(-max_rotation, max_rotation, size=len(X))
    out = np.empty_like(images)
    for i, (image, shift, angle) in enumerate(zip(images, shifts, angles)):
        if max_rotation:
            image = ndimage.rotate(image, angle, reshape=False, order=1, mode="constant")
        out[i] = ndimage.shift(image, shift, order=0, mode="constant")
    return out.reshape(len(X), -1), y
