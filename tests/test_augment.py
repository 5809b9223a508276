"""Training-time augmentation: each transform against a loop over samples, and its plumbing.

Each transform draws per sample; the references below take each sample on its own and check
that its output is one the transform may give (a shift of at most the strength, a flip or
not, one masked segment, ...), so they do not depend on the random draws.
"""

import math
import re

import numpy as np
import pytest
import torch

from sk_deepmetric import ArcFaceEmbedder, TripletEmbedder
from sk_deepmetric.augment import AUGMENTATIONS, _resample, make_augmentation
from sk_deepmetric.datasets import make_signals

EPS32 = torch.finfo(torch.float32).eps


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def signals(n=16, channels=2, length=40, seed=0):
    return torch.randn(n, channels, length, generator=generator(seed))


def images(n=16, channels=3, height=9, width=11, seed=0):
    return torch.randn(n, channels, height, width, generator=generator(seed))


def example(name):
    ranks = AUGMENTATIONS[name][2]
    return images() if 3 in ranks else signals() if 2 in ranks else torch.randn(16, 7)


def apply(name, x, strength=None, seed=0):
    augment = name if strength is None else {name: strength}
    return make_augmentation(augment, tuple(x.shape[1:]))(x, generator(seed))


def resample_tolerance(x, size):
    # Resampling at the input's own pixel centres reads each value back exactly but for the
    # rounding of the sampling grid: an error of a few ulp of 1 in [-1, 1] units is
    # size / 2 of them in pixels, times the largest step between neighbours (< 2 max|x|).
    return 8 * EPS32 * size * float(x.abs().max())


# ----------------------------------------------------------------- every transform


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_keeps_shape_and_dtype_and_is_seeded(name):
    x = example(name)
    out = apply(name, x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert torch.equal(out, apply(name, x))  # same generator seed, same result
    assert not torch.equal(out, apply(name, x, seed=1))


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_draws_differ_between_samples(name):
    # the same sample repeated 16 times: a per-batch draw would give 16 equal outputs
    x = example(name)[:1].expand(16, *example(name).shape[1:]).contiguous()
    out = apply(name, x)
    assert len({tuple(row.flatten().tolist()) for row in out}) > 1


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
def test_zero_strength_is_the_identity(name):
    x = example(name)
    out = apply(name, x, strength=0.0)
    atol = resample_tolerance(x, max(x.shape[2:], default=1))
    torch.testing.assert_close(out, x, rtol=0, atol=atol)


def test_rows_take_the_elementwise_transforms():
    x = torch.randn(32, 7, generator=generator())
    for name in ("scale", "jitter"):
        assert apply(name, x).shape == (32, 7)


# ----------------------------------------------------------------- against loops


def edge_shift(sample, offsets):
    """``sample`` (channels, *spatial) shifted by ``offsets`` per axis, edges repeated."""
    out = sample
    for axis, k in enumerate(offsets, start=1):
        size = sample.shape[axis]
        index = [min(max(i - k, 0), size - 1) for i in range(size)]
        out = out.index_select(axis, torch.tensor(index))
    return out


@pytest.mark.parametrize("x", [signals(), images()], ids=["signals", "images"])
def test_shift_moves_each_sample_by_at_most_the_strength(x):
    strength = 0.2
    out = apply("shift", x, strength)
    spatial = x.shape[2:]
    ranges = [range(-round(strength * s), round(strength * s) + 1) for s in spatial]
    for sample, shifted in zip(x, out):
        candidates = [(a,) for a in ranges[0]]
        if len(spatial) == 2:
            candidates = [(a, b) for a in ranges[0] for b in ranges[1]]
        assert any(torch.equal(shifted, edge_shift(sample, k)) for k in candidates)


def test_flip_gives_each_image_or_its_mirror():
    x = images()
    out = apply("flip", x, 0.5)
    kinds = []
    for sample, flipped in zip(x, out):
        kinds.append(torch.equal(flipped, sample.flip(-1)))
        assert kinds[-1] or torch.equal(flipped, sample)
    assert 0 < sum(kinds) < len(kinds)


def test_scale_multiplies_each_channel_by_one_factor_in_range():
    x = signals() + 3.0  # away from zero, so that the ratio is well defined
    out = apply("scale", x, 0.3)
    for sample, scaled in zip(x, out):
        for channel, result in zip(sample, scaled):
            ratio = (result / channel).tolist()
            assert max(ratio) - min(ratio) <= 4 * EPS32 * max(ratio)
            assert 0.7 - 1e-6 <= ratio[0] <= 1.3 + 1e-6


def test_jitter_adds_noise_scaled_to_each_sample():
    x = torch.randn(64, 1, 400, generator=generator()) * torch.logspace(-2, 2, 64)[:, None, None]
    noise = apply("jitter", x, 0.1) - x
    relative = [float(n.std() / (0.1 * s.std())) for n, s in zip(noise, x)]
    # 400 standard normal draws: their standard deviation is 1 within 0.035 (1 sigma)
    assert all(0.8 < r < 1.2 for r in relative)


def test_jitter_scales_by_the_sample_standard_deviation_with_bessels_correction():
    # samples of two values -1 and 1: a standard deviation of sqrt(2) with Bessel's
    # correction, 1 without, so the two are told apart by far more than the rounding
    x = torch.tensor([-1.0, 1.0]).repeat(32, 1)
    noise = (apply("jitter", x, 0.1) - x).double()
    draws = torch.randn((32, 1, 2), generator=generator()).reshape(32, 2).double()
    expected = 0.1 * math.sqrt(2) * draws
    # a few float32 roundings (the std, two products, the sum and the difference), each at
    # most EPS32 relative to the values involved
    bound = 16 * EPS32 * (x.double().abs() + expected.abs())
    assert torch.all((noise - expected).abs() <= bound)


@pytest.mark.parametrize(
    "shape", [(8, 1), (8, 1, 1), (8, 1, 1, 1)], ids=["row", "signal", "image"]
)
def test_jitter_leaves_a_sample_of_one_value_unchanged(shape):
    # one value has no spread: no noise, rather than a NaN standard deviation
    x = torch.randn(shape, generator=generator())
    assert torch.equal(apply("jitter", x, 0.5), x)


def test_jitter_on_one_feature_rows_trains():
    X = np.random.RandomState(0).randn(60, 1).astype(np.float32)
    y = np.arange(60) % 3
    model = TripletEmbedder(max_iter=1, augment="jitter", random_state=0).fit(X, y)
    assert np.isfinite(model.transform(X)).all()


def test_time_mask_replaces_one_segment_by_the_channel_mean():
    x = signals(length=50)
    out = apply("time_mask", x, 0.2)
    for sample, masked in zip(x, out):
        changed = (masked != sample).any(dim=0).nonzero().flatten().tolist()
        if not changed:
            continue
        assert changed == list(range(changed[0], changed[-1] + 1))  # one segment
        assert len(changed) <= 0.2 * 50
        segment = masked[:, changed[0] : changed[-1] + 1]
        torch.testing.assert_close(segment, sample.mean(dim=1, keepdim=True).expand_as(segment))


def test_erase_replaces_at_most_one_rectangle_by_the_channel_mean():
    x = images(n=32, height=12, width=12)
    out = apply("erase", x, 0.3)
    erased = 0
    for sample, result in zip(x, out):
        changed = (result != sample).any(dim=0)
        if not changed.any():
            continue
        erased += 1
        rows = changed.any(dim=1).nonzero().flatten()
        cols = changed.any(dim=0).nonzero().flatten()
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        assert changed[box].all()  # a full rectangle, nothing outside it
        assert int(changed.sum()) <= 0.3 * 144 + 2 * 12  # its area, rounded up to pixels
        mean = sample.mean(dim=(1, 2))[:, None, None].expand_as(result[:, box[0], box[1]])
        torch.testing.assert_close(result[:, box[0], box[1]], mean)
    assert 0 < erased < 32


def ramp(n, length):
    return torch.linspace(0, 1, length).expand(n, 1, length).contiguous()


def test_crop_stretches_a_window_of_at_least_one_minus_the_strength():
    x = ramp(16, 60)
    out = apply("crop", x, 0.3)
    t = np.linspace(0, 1, 60)
    for result in out[:, 0].numpy():
        # a window [a, a + w] of the ramp, stretched to the whole length, is a ramp of slope w
        # (off by half a sample at each end, where the border is repeated)
        slope, start = np.polyfit(t[2:-2], result[2:-2], 1)
        assert 0.7 - 0.05 <= slope <= 1.0 + 1e-4
        assert -1e-4 <= start and start + slope <= 1.0 + 1e-4


def test_time_warp_is_monotone_and_keeps_the_ends():
    x = ramp(16, 80)
    out = apply("time_warp", x, 0.5)[:, 0]
    assert (out.diff(dim=1) >= -1e-6).all()
    torch.testing.assert_close(out[:, 0], x[:, 0, 0], rtol=0, atol=1e-2)
    torch.testing.assert_close(out[:, -1], x[:, 0, -1], rtol=0, atol=1e-2)
    assert (out - x[:, 0]).abs().max() > 0.01


def test_resample_by_a_quarter_turn_is_rot90():
    x = images(n=2, height=7, width=7)
    quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]]).expand(2, 2, 2)
    out = _resample(x, quarter, torch.zeros(2, 2))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(2, 3)), rtol=0, atol=1e-5)


def test_rotate_keeps_a_centred_disc():
    yy, xx = torch.meshgrid(torch.arange(15.0), torch.arange(15.0), indexing="ij")
    disc = (((yy - 7) ** 2 + (xx - 7) ** 2) <= 16).float().expand(8, 1, 15, 15).contiguous()
    out = apply("rotate", disc, 30.0)
    assert (out - disc).abs().mean() < 0.05  # only the rim moves, by interpolation
    torch.testing.assert_close(out[:, :, 7, 7], disc[:, :, 7, 7])


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("augment", "shape", "message"),
    [
        ("rotat", (1, 8, 8), "`augment` names must be among ['crop', 'erase', 'flip', "
         "'jitter', 'rotate', 'scale', 'shift', 'time_mask', 'time_warp'], got 'rotat'. "
         "Did you mean 'rotate'?"),
        ("rotate", (1, 50), "`augment` 'rotate' applies to images, but the network's samples "
         "have shape (1, 50) (signals (channels, length))."),
        (["shift", "time_warp"], (1, 8, 8), "`augment` 'time_warp' applies to signals "
         "(channels, length), but the network's samples have shape (1, 8, 8) (images)."),
        ("shift", (64,), "`augment` 'shift' applies to signals (channels, length) and images, "
         "but the network's samples have shape (64,) (rows of features)."),
        ({"rotate": 200}, (1, 8, 8), "The strength of `augment` 'rotate' must be a real number "
         "in [0.0, 180.0], got 200."),
        ({"jitter": -0.1}, None, "The strength of `augment` 'jitter' must be a real number in "
         "[0.0, inf], got -0.1."),
        ([], None, "`augment` is an empty list; pass None for no augmentation."),
        (3, None, "`augment` must be None, a name, a list of names, a dict of name -> strength "
         "or a callable (batch, generator) -> batch, got 3."),
    ],
)  # fmt: skip
def test_bad_augment_is_a_clear_error(augment, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make_augmentation(augment, shape)


def test_callable_returning_another_shape_is_a_clear_error():
    bad = make_augmentation(lambda batch, generator: batch[:, :, :-1])
    with pytest.raises(ValueError, match=re.escape("must return a tensor of the batch's shape")):
        bad(signals(), generator())


class _Seen:
    """Callables of several signatures, recording what each was called with."""

    def __init__(self):
        self.calls = []

    def defaulted(self, batch, sigma=0.1):
        self.calls.append(sigma)
        return batch

    def named(self, batch, generator=None):
        self.calls.append(generator)
        return batch

    def star(self, *inputs):
        self.calls.append(len(inputs))
        return inputs[0]

    def required(self, batch, rng):
        self.calls.append(rng)
        return batch


def test_callable_gets_the_generator_only_when_it_asks_for_one():
    seen, g = _Seen(), generator()
    for fn, want in [
        (seen.defaulted, 0.1),  # its own default, not the generator
        (seen.named, g),
        (seen.star, 1),  # torchvision's forward(*inputs): the batch alone
        (seen.required, g),
    ]:
        make_augmentation(fn)(signals(), g)
        assert seen.calls[-1] is want or seen.calls[-1] == want
    with pytest.raises(TypeError, match=r"must take \(batch, generator\) or \(batch\), got"):
        make_augmentation(lambda a, b, c: a)


# ----------------------------------------------------------------- in the estimators


@pytest.fixture(scope="module")
def series():
    X, y = make_signals(96, 4, length=32, random_state=0)
    return X, y


def fast(cls, **params):
    base = {"max_iter": 2, "conv_channels": (4, 8), "n_components": 8, "batch_size": 32}
    return cls(**{**base, "network": "cnn1d", "random_state": 0, **params})


class Recorder:
    """An augmentation that counts its calls and checks where the batch lives."""

    def __init__(self):
        self.calls, self.rows = 0, 0

    def __call__(self, batch, generator):
        assert generator.device == batch.device
        assert not torch.is_grad_enabled()
        self.calls += 1
        self.rows += batch.shape[0]
        return batch.flip(-1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("cls", [TripletEmbedder, ArcFaceEmbedder])
def test_augment_runs_on_training_batches_only(series, cls):
    X, y = series
    recorder = Recorder()
    model = fast(cls, augment=recorder, early_stopping=True, validation_holdout="samples")
    model.fit(X, y)
    # training batches only: the same number each epoch, fewer rows than X (the held-out
    # samples are embedded for validation without it)
    assert recorder.calls > 0 and recorder.calls % model.n_iter_ == 0
    assert recorder.rows // model.n_iter_ <= len(y) - 2 * len(model.classes_)
    rows_seen = recorder.rows
    model.transform(X)
    model.score(X, y)
    assert recorder.rows == rows_seen


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_augmented_fits_are_reproducible_and_depend_on_the_seed(series):
    X, y = series
    augment = ["shift", "time_warp", "scale", "jitter", "time_mask", "crop"]
    first = fast(TripletEmbedder, augment=augment).fit(X, y).transform(X)
    again = fast(TripletEmbedder, augment=augment).fit(X, y).transform(X)
    other = fast(TripletEmbedder, augment=augment, random_state=1).fit(X, y).transform(X)
    plain = fast(TripletEmbedder).fit(X, y).transform(X)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, plain)


def test_one_argument_callables_draw_from_the_seeded_global_rng(series):
    X, y = series

    def noisy(batch):
        return batch + 0.1 * torch.randn_like(batch)

    state = torch.get_rng_state()
    first = fast(TripletEmbedder, augment=noisy).fit(X, y).transform(X)
    again = fast(TripletEmbedder, augment=noisy).fit(X, y).transform(X)
    np.testing.assert_array_equal(first, again)
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left as it was


def test_estimator_checks_augment_against_the_input(series):
    X, y = series
    with pytest.raises(ValueError, match=re.escape("`augment` 'flip' applies to images")):
        fast(TripletEmbedder, augment="flip").fit(X, y)
    with pytest.raises(ValueError, match=re.escape("Did you mean 'time_warp'?")):
        fast(TripletEmbedder, augment=["time_wrap"]).fit(X, y)


def test_a_nan_from_an_augment_callable_is_pointed_at(series):
    X, y = series
    model = fast(TripletEmbedder, augment=lambda batch, generator: batch * math.nan)
    with pytest.raises(FloatingPointError, match="`augment` is a callable: check that it retu"):
        model.fit(X, y)
