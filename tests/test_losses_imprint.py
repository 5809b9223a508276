"""``imprint_``: the public hook that starts a loss's class weights at the class means.

Checked against a loop over classes in float64, for every loss with class weights (the
softmax family, sub-centre ArcFace, the center loss, Proxy-Anchor).
"""

import math

import numpy as np
import pytest
import torch
from _rounding import U64, gamma

from sk_deepmetric.losses import (
    ArcFaceLoss,
    CenterLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    ProxyAnchorLoss,
    SoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)

N_CLASSES, DIM = 4, 5

LOSSES = {
    "softmax": (lambda: SoftmaxLoss(N_CLASSES, DIM), False),
    "large-margin-softmax": (lambda: LargeMarginSoftmaxLoss(N_CLASSES, DIM), False),
    "sphereface": (lambda: SphereFaceLoss(N_CLASSES, DIM), True),
    "cosface": (lambda: CosFaceLoss(N_CLASSES, DIM), True),
    "arcface": (lambda: ArcFaceLoss(N_CLASSES, DIM), True),
    "sub-center-arcface": (lambda: SubCenterArcFaceLoss(N_CLASSES, DIM, sub_centers=3), True),
    "center": (lambda: CenterLoss(N_CLASSES, DIM), False),
    "proxy-anchor": (lambda: ProxyAnchorLoss(N_CLASSES, DIM), True),
}


def _class_weight(loss):
    if isinstance(loss, CenterLoss):
        return loss.softmax.weight
    return loss.proxies if isinstance(loss, ProxyAnchorLoss) else loss.weight


def _reference(weight, means, center, norm):
    """Each class's rows: the first at its centred mean's direction (a class whose mean is
    not finite keeps it), the others at their own, all at ``norm`` (None: the mean norm)."""
    weight = weight.tolist()
    rows_per_class = len(weight) // len(means)
    if norm is None:
        norm = sum(math.sqrt(sum(w * w for w in row)) for row in weight) / len(weight)
    out = []
    for c, mean in enumerate(means.tolist()):
        for k in range(rows_per_class):
            row = weight[c * rows_per_class + k]
            if k == 0 and all(math.isfinite(m) for m in mean):
                row = [m - (0.0 if center is None else o) for m, o in zip(mean, center or mean)]
            length = math.sqrt(sum(r * r for r in row))
            out.append([norm * r / length for r in row])
    return np.array(out)


@pytest.mark.parametrize("norm", [None, 2.5])
@pytest.mark.parametrize("centred", [False, True])
@pytest.mark.parametrize("name", LOSSES)
def test_imprint_starts_each_class_at_its_mean_direction(name, centred, norm):
    make, unit = LOSSES[name]
    loss = make().double()
    assert loss.normalizes_class_weights is unit
    loss.reset_parameters(torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    means = torch.randn(N_CLASSES, DIM, generator=generator, dtype=torch.float64)
    means[2] = torch.nan  # a class without samples yet
    center = torch.randn(DIM, generator=generator, dtype=torch.float64) if centred else None
    weight_before = _class_weight(loss).detach().clone()
    centers_before = loss.centers.detach().clone() if isinstance(loss, CenterLoss) else None

    assert loss.imprint_(means, center=center, norm=norm) is loss

    weight = _class_weight(loss)
    assert weight.requires_grad and weight.grad_fn is None  # still a leaf to train
    expected = _reference(weight_before, means, None if center is None else center.tolist(), norm)
    # a norm (DIM squares, a root), a division and a product; the mean norm adds a sum of
    # as many terms as rows: well within gamma(4 * DIM + rows) in float64
    rtol = gamma(4 * DIM + len(weight), U64)
    np.testing.assert_allclose(weight.detach().numpy(), expected, rtol=rtol, atol=0)
    if centers_before is not None:  # the centres take the (uncentred) means themselves
        expected_centers = centers_before.clone()
        expected_centers[[0, 1, 3]] = means[[0, 1, 3]]
        torch.testing.assert_close(loss.centers.detach(), expected_centers, rtol=0, atol=0)


@pytest.mark.parametrize("name", LOSSES)
def test_imprint_keeps_the_direction_of_a_class_whose_mean_is_the_center(name):
    # constant embeddings (an untrained or dead network): no direction to take, and a zero
    # weight row would have the gradient of normalising a zero vector
    torch.manual_seed(0)
    loss = LOSSES[name][0]()
    before = _class_weight(loss).detach().clone()
    means = torch.ones(N_CLASSES, DIM)
    means[0] += 1.0
    with pytest.warns(UserWarning, match=f"{N_CLASSES - 1} of {N_CLASSES} class means equal"):
        loss.imprint_(means, center=torch.ones(DIM), norm=4.0)
    kept = torch.cat([means[:1], torch.full((N_CLASSES - 1, DIM), math.nan)])  # own direction
    want = _reference(before, kept, [1.0] * DIM, 4.0)
    # each row: a normalisation and a product, d + 3 roundings of eps/2 of values <= 4
    u = 2.0**-24
    np.testing.assert_allclose(_class_weight(loss).detach(), want, rtol=0, atol=4 * (DIM + 3) * u)


@pytest.mark.parametrize("name", LOSSES)
def test_imprint_checks_its_arguments(name):
    loss = LOSSES[name][0]()
    before = _class_weight(loss).detach().clone()
    with pytest.raises(
        ValueError,
        match=r"`class_means` must be a tensor of shape "
        r"\(n_classes, n_components\) = \(4, 5\), got \(3, 5\)\.",
    ):
        loss.imprint_(torch.zeros(3, DIM))
    with pytest.raises(ValueError, match=r"`class_means` .* got not a tensor\."):
        loss.imprint_(np.zeros((N_CLASSES, DIM)))
    with pytest.raises(
        ValueError,
        match=r"`center` must be a tensor of shape \(5,\) or None, "
        r"got \(1, 5\)\.",
    ):
        loss.imprint_(torch.ones(N_CLASSES, DIM), center=torch.zeros(1, DIM))
    for norm in (0.0, -1.0, math.inf, math.nan, True, "4"):
        with pytest.raises(ValueError, match=r"`norm` must be a positive finite number or None"):
            loss.imprint_(torch.ones(N_CLASSES, DIM), norm=norm)
    torch.testing.assert_close(_class_weight(loss).detach(), before, rtol=0, atol=0)
