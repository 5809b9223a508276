"""Training-time augmentation: random transforms of a whole batch, seeded, on its device.

An augmentation takes a batch shaped as the network sees it, ``(batch, channels, length)``
for signals or ``(batch, channels, height, width)`` for images (``(batch, n_features)`` for
tabular rows), and returns a batch of the same shape: which transforms apply is read from the
number of axes, so one-channel images given to a network of your own as ``(batch, height,
width)`` would be taken for signals of ``height`` channels (give them as ``(batch, 1,
height, width)``). Each sample gets its own random draw, vectorised over the batch (no Python
loop per sample), from a ``torch.Generator`` on the batch's device, so that a fit seeded
with ``random_state`` is reproducible.

:func:`make_augmentation` turns the estimators' ``augment=`` parameter into one callable and
checks that each name fits the input's shape. The transforms, with what their strength means
(the default in brackets):

============  ==========================  ==============================================
name          inputs                      strength
============  ==========================  ==============================================
"shift"       signals, images             largest shift, a fraction of the length or of
                                          the height and width (0.1); edges repeated
"crop"        signals, images             largest fraction of the length (or of the
                                          height and width) cut off; the window kept,
                                          at a random place, is stretched back (0.2)
"scale"       any                         largest relative change of each channel's
                                          amplitude (0.2)
"jitter"      any                         standard deviation of added Gaussian noise,
                                          relative to the sample's (0.05); none for a
                                          sample of one value
"time_mask"   signals                     largest fraction of the length replaced by
                                          the channel's mean (0.1)
"time_warp"   signals                     standard deviation of the log local speed of a
                                          smooth random warp of time (0.2)
"flip"        images                      probability of a left-right flip (0.5)
"rotate"      images                      largest rotation, in degrees (15)
"erase"       images                      largest area fraction of a rectangle replaced
                                          by the channel's mean, drawn for half the
                                          samples (0.25; Zhong et al. 2020)
============  ==========================  ==============================================
"""

from __future__ import annotations

import inspect
import math
import numbers
from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor

from ._validation import did_you_mean

__all__ = ["AUGMENTATIONS", "Augmentation", "make_augmentation"]

Transform = Callable[[Tensor, float, torch.Generator], Tensor]


def _uniform(x: Tensor, shape: tuple[int, ...], low, high, generator) -> Tensor:
    """Uniform draws in ``[low, high)`` of ``shape``, on ``x``'s device, in float32."""
    u = torch.rand(shape, generator=generator, device=x.device)
    return low + (high - low) * u


def _per_sample(x: Tensor) -> tuple[int, ...]:
    """Shape that broadcasts one value per sample over ``x``."""
    return (x.shape[0],) + (1,) * (x.ndim - 1)


def _channel_mean(x: Tensor) -> Tensor:
    """Each sample's mean over its spatial positions, per channel, broadcastable to ``x``."""
    return x.mean(dim=tuple(range(2, x.ndim)), keepdim=True)


# ----------------------------------------------------------------- any input
def scale(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Multiply each channel of each sample by a factor in ``[1 - s, 1 + s]``."""
    shape = x.shape[:2] + (1,) * (x.ndim - 2)
    return x * _uniform(x, shape, 1 - strength, 1 + strength, generator).to(x.dtype)


def jitter(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Add Gaussian noise of ``s`` times each sample's standard deviation.

    The standard deviation is the sample one (Bessel's correction) over all of a sample's
    values; a sample of a single value has none to spread over, so it gets 0 (no noise), as a
    constant sample does, rather than NaN.
    """
    values = x.flatten(1)
    correction = 1 if values.shape[1] > 1 else 0
    spread = values.std(dim=1, correction=correction).reshape(_per_sample(x))
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + strength * spread * noise


# ----------------------------------------------------------------- signals and images
def shift(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Shift each sample by up to ``s`` of its size along each spatial axis, edges repeated."""
    for axis in range(2, x.ndim):
        size = x.shape[axis]
        largest = strength * size
        offset = _uniform(x, (x.shape[0],), -largest, largest, generator).round().long()
        index = (torch.arange(size, device=x.device) - offset[:, None]).clamp(0, size - 1)
        shape = [x.shape[0]] + [1] * (x.ndim - 1)
        shape[axis] = size
        x = x.gather(axis, index.reshape(shape).expand(x.shape))
    return x


def crop(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Keep a random window of ``1 - s`` to all of each spatial axis, stretched back to size."""
    n, dims = x.shape[0], x.ndim - 2
    keep = _uniform(x, (n, 1), 1.0 - strength, 1.0, generator).expand(n, dims)
    centre = _uniform(x, (n, dims), -1.0, 1.0, generator) * (1 - keep)
    return _resample(x, torch.diag_embed(keep), centre)


def _resample(x: Tensor, linear: Tensor, offset: Tensor) -> Tensor:
    """Sample ``x`` at ``linear @ p + offset`` for each output position ``p`` in [-1, 1]^d.

    ``linear`` is ``(n, d, d)`` and ``offset`` ``(n, d)``, in the (x, y) order of
    ``torch.nn.functional.affine_grid``; bilinear, with the border repeated outside.
    """
    image = x if x.ndim == 4 else x.unsqueeze(2)  # a signal is an image of height 1
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=torch.float32)
    if x.ndim == 4:
        theta[:, :, :2], theta[:, :, 2] = linear, offset
    else:
        theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1] = linear[:, 0, 0], offset[:, 0], 1.0
    grid = F.affine_grid(theta, list(image.shape), align_corners=False)
    out = F.grid_sample(
        image.float(), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.to(x.dtype).reshape(x.shape)


# ----------------------------------------------------------------- signals
def time_mask(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Replace a random segment of up to ``s`` of the length by each channel's mean."""
    n, length = x.shape[0], x.shape[-1]
    width = _uniform(x, (n, 1), 0.0, strength * length, generator)
    start = _uniform(x, (n, 1), 0.0, 1.0, generator) * (length - width)
    position = torch.arange(length, device=x.device)
    masked = (position >= start) & (position < start + width)  # (n, length)
    return torch.where(masked[:, None, :], _channel_mean(x), x)


#: Knots of the random speed curve of ``time_warp``: a few, so that the warp is smooth.
_WARP_KNOTS = 4


def time_warp(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Resample each series along a smooth random monotone map of time onto itself.

    The local speed is ``exp(s * z)`` with ``z`` standard normal at a few knots and
    interpolated between them; time is its normalised cumulative sum (Um et al. 2017).
    """
    n, length = x.shape[0], x.shape[-1]
    knots = torch.randn((n, 1, _WARP_KNOTS), generator=generator, device=x.device)
    speed = F.interpolate(torch.exp(strength * knots), size=length, mode="linear")[:, 0]
    time = torch.cumsum(speed, dim=1)
    time = (time - time[:, :1]) / (time[:, -1:] - time[:, :1]).clamp_min(1e-12)
    # sample position i of the output at warped time, in grid_sample's [-1, 1] units
    where = (time * (length - 1) + 0.5) / length * 2 - 1
    grid = torch.stack([where, torch.zeros_like(where)], dim=-1)[:, None]  # (n, 1, L, 2)
    out = F.grid_sample(
        x.float().unsqueeze(2), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return out.to(x.dtype).reshape(x.shape)


# ----------------------------------------------------------------- images
def flip(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Flip each image left-right with probability ``s``."""
    flipped = _uniform(x, _per_sample(x), 0.0, 1.0, generator) < strength
    return torch.where(flipped, x.flip(-1), x)


def rotate(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Rotate each image about its centre by up to ``s`` degrees either way."""
    angle = _uniform(x, (x.shape[0],), -strength, strength, generator) * (math.pi / 180)
    cos, sin = torch.cos(angle), torch.sin(angle)
    height, width = x.shape[-2:]
    aspect = height / width  # affine_grid's units are half the width and half the height
    linear = torch.stack(
        [torch.stack([cos, -sin * aspect], -1), torch.stack([sin / aspect, cos], -1)], -2
    )
    return _resample(x, linear, torch.zeros(x.shape[0], 2, device=x.device))


def erase(x: Tensor, strength: float, generator: torch.Generator) -> Tensor:
    """Random erasing: for half the images, a rectangle of 2% to ``s`` of the area, of
    aspect ratio 0.3 to 3.3, replaced by each channel's mean (Zhong et al. 2020)."""
    n, height, width = x.shape[0], x.shape[-2], x.shape[-1]
    area = _uniform(x, (n,), min(0.02, strength), strength, generator) * height * width
    log_ratio = _uniform(x, (n,), math.log(0.3), math.log(1 / 0.3), generator)
    h = torch.sqrt(area * torch.exp(log_ratio)).clamp(max=height)
    w = torch.sqrt(area / torch.exp(log_ratio)).clamp(max=width)
    top = _uniform(x, (n,), 0.0, 1.0, generator) * (height - h)
    left = _uniform(x, (n,), 0.0, 1.0, generator) * (width - w)
    chosen = _uniform(x, (n,), 0.0, 1.0, generator) < 0.5
    rows = torch.arange(height, device=x.device)[None, :]
    cols = torch.arange(width, device=x.device)[None, :]
    inside_rows = (rows >= top[:, None]) & (rows < (top + h)[:, None])  # (n, H)
    inside_cols = (cols >= left[:, None]) & (cols < (left + w)[:, None])  # (n, W)
    box = inside_rows[:, :, None] & inside_cols[:, None, :] & chosen[:, None, None]
    return torch.where(box[:, None], _channel_mean(x), x)


#: name -> (transform, default strength, sample ranks it applies to: 1 rows, 2 signals
#: ``(channels, length)``, 3 images ``(channels, height, width)``).
AUGMENTATIONS: dict[str, tuple[Transform, float, tuple[int, ...]]] = {
    "shift": (shift, 0.1, (2, 3)),
    "crop": (crop, 0.2, (2, 3)),
    "scale": (scale, 0.2, (1, 2, 3)),
    "jitter": (jitter, 0.05, (1, 2, 3)),
    "time_mask": (time_mask, 0.1, (2,)),
    "time_warp": (time_warp, 0.2, (2,)),
    "flip": (flip, 0.5, (3,)),
    "rotate": (rotate, 15.0, (3,)),
    "erase": (erase, 0.25, (3,)),
}

#: The strength's range for each name (closed bounds unless noted in the checks).
_STRENGTH_RANGE = {
    "shift": (0.0, 1.0),
    "crop": (0.0, 0.9),
    "scale": (0.0, 1.0),
    "jitter": (0.0, None),
    "time_mask": (0.0, 1.0),
    "time_warp": (0.0, None),
    "flip": (0.0, 1.0),
    "rotate": (0.0, 180.0),
    "erase": (0.0, 1.0),
}

_KIND = {1: "rows of features", 2: "signals (channels, length)", 3: "images"}


class Augmentation:
    """A sequence of named transforms, applied in order: ``augmentation(batch, generator)``.

    Build it with :func:`make_augmentation`.
    """

    def __init__(self, steps: list[tuple[str, float]]) -> None:
        self.steps = steps

    def __call__(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        sample = batch if batch.ndim > 2 else batch.unsqueeze(1)  # rows: one channel
        for name, strength in self.steps:
            sample = AUGMENTATIONS[name][0](sample, strength, generator)
        return sample.reshape(batch.shape)

    def __repr__(self) -> str:
        return f"Augmentation({self.steps!r})"


class _UserAugmentation:
    """A user's callable: ``fn(batch, generator)``, or ``fn(batch)`` drawing from torch's
    global RNG (which ``fit`` seeds from ``random_state``); its output's shape is checked."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.takes_generator = _accepts_two_arguments(fn)

    def __call__(self, batch: Tensor, generator: torch.Generator) -> Tensor:
        out = self.fn(batch, generator) if self.takes_generator else self.fn(batch)
        if not isinstance(out, Tensor) or out.shape != batch.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(
                f"The `augment` callable must return a tensor of the batch's shape "
                f"{tuple(batch.shape)}, got {got}."
            )
        return out.to(batch.dtype)


def _accepts_two_arguments(fn: Callable) -> bool:
    """Whether ``fn`` is called with the generator: when it needs a second argument, or its
    second parameter is named ``generator``. A second parameter with a default under another
    name (``def add_noise(batch, sigma=0.1)``) or ``*args`` (torchvision's transforms) is
    the callable's own, and keeps its default."""
    target = fn.forward if isinstance(fn, torch.nn.Module) else fn
    try:
        signature = inspect.signature(target)
    except ValueError:  # no signature (a builtin): call it with the batch only
        return False
    try:
        signature.bind(None)
    except TypeError:  # needs more than the batch
        try:
            signature.bind(None, None)
        except TypeError:
            raise TypeError(
                "The `augment` callable must take (batch, generator) or (batch), got a "
                f"callable of signature {signature}."
            ) from None
        return True
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 and positional[1].name == "generator"


def make_augmentation(
    augment: object, sample_shape: tuple[int, ...] | None = None
) -> Callable[[Tensor, torch.Generator], Tensor] | None:
    """The callable behind an estimator's ``augment=`` parameter, checked.

    Parameters
    ----------
    augment : None, str, list of str, dict or callable
        A name of :data:`AUGMENTATIONS`, a list of names (applied in order), a dict of
        name -> strength, or a callable ``(batch, generator) -> batch`` (or ``batch ->
        batch``). A callable gets the generator when it needs a second argument or its
        second parameter is named ``generator``; one with a defaulted second parameter
        under another name (``def add_noise(batch, sigma=0.1)``) gets the batch alone.
    sample_shape : tuple of int, optional
        Shape of one sample as the network sees it; when given, each name is checked
        against it (a rotation needs images).

    Returns
    -------
    augmentation : callable or None
    """
    if augment is None:
        return None
    if callable(augment) and not isinstance(augment, str | Mapping):
        return _UserAugmentation(augment)
    if isinstance(augment, str):
        steps = [(augment, None)]
    elif isinstance(augment, Mapping):
        steps = list(augment.items())
    elif isinstance(augment, list | tuple):
        steps = [(name, None) for name in augment]
    else:
        raise ValueError(
            "`augment` must be None, a name, a list of names, a dict of name -> strength or a "
            f"callable (batch, generator) -> batch, got {augment!r}."
        )
    if not steps:
        raise ValueError("`augment` is an empty list; pass None for no augmentation.")
    checked = [_check_step(name, strength, sample_shape) for name, strength in steps]
    return Augmentation(checked)


def _check_step(name: object, strength: object, sample_shape) -> tuple[str, float]:
    if not isinstance(name, str) or name not in AUGMENTATIONS:
        raise ValueError(
            f"`augment` names must be among {sorted(AUGMENTATIONS)}, got {name!r}."
            f"{did_you_mean(name, AUGMENTATIONS)}"
        )
    _, default, ranks = AUGMENTATIONS[name]
    if strength is None:
        strength = default
    low, high = _STRENGTH_RANGE[name]
    if (
        isinstance(strength, bool)
        or not isinstance(strength, numbers.Real)
        or not math.isfinite(strength)
        or strength < low
        or (high is not None and strength > high)
    ):
        bounds = f"[{low}, {'inf' if high is None else high}]"
        raise ValueError(
            f"The strength of `augment` {name!r} must be a real number in {bounds}, "
            f"got {strength!r}."
        )
    if sample_shape is not None and len(sample_shape) not in ranks:
        kinds = " and ".join(_KIND[r] for r in ranks)
        fitting = sorted(n for n, (_, _, r) in AUGMENTATIONS.items() if len(sample_shape) in r)
        raise ValueError(
            f"`augment` {name!r} applies to {kinds}, but the network's samples have shape "
            f"{tuple(sample_shape)} ({_KIND.get(len(sample_shape), 'unknown')}). Set "
            "`input_shape` (e.g. (channels, length) or (channels, height, width)) or choose "
            f"among {fitting}."
        )
    return name, float(strength)
