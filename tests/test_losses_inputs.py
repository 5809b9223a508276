"""Every loss and miner on non-finite, half-precision and sparse embeddings.

A NaN or an infinity anywhere in a batch must give a NaN (or, for an infinity, a non-finite)
loss, never a finite loss whose gradients are NaN, and a miner must say so; finite batches give
finite losses and gradients. Half-precision embeddings are computed in float32.
"""

import functools
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sk_deepmetric.losses import (
    AngularLoss,
    ArcFaceLoss,
    CenterLoss,
    ContrastiveLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    MultiSimilarityLoss,
    NPairsLoss,
    ProxyAnchorLoss,
    SoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
    SupConLoss,
    TripletMarginLoss,
)
from sk_deepmetric.miners import (
    BatchHardMiner,
    MultiSimilarityMiner,
    SemiHardMiner,
    TripletMarginMiner,
)

N_CLASSES, DIM = 3, 4

TUPLE_LOSSES = {
    "triplet-semihard": lambda: TripletMarginLoss(),
    "triplet-batch_hard": lambda: TripletMarginLoss(miner="batch_hard"),
    "triplet-all": lambda: TripletMarginLoss(miner="all"),
    "triplet-hard": lambda: TripletMarginLoss(miner="hard"),
    "triplet-easy": lambda: TripletMarginLoss(miner="easy"),
    "triplet-smooth": lambda: TripletMarginLoss(miner=None, smooth=True),
    "triplet-semihard-cosine": lambda: TripletMarginLoss(distance="cosine"),
    "triplet-semihard-squared": lambda: TripletMarginLoss(distance="squared_euclidean"),
    "triplet-callable": lambda: TripletMarginLoss(miner=TripletMarginMiner(0.5)),
    "contrastive": lambda: ContrastiveLoss(),
    "contrastive-cosine": lambda: ContrastiveLoss(distance="cosine"),
    "contrastive-squared": lambda: ContrastiveLoss(distance="squared_euclidean"),
    "npairs": lambda: NPairsLoss(),
    "npairs-cosine": lambda: NPairsLoss(distance="cosine"),
    "angular": lambda: AngularLoss(),
    "multi-similarity": lambda: MultiSimilarityLoss(),
    "multi-similarity-all-pairs": lambda: MultiSimilarityLoss(epsilon=None),
    "supcon": lambda: SupConLoss(),
}
CLASSIFIER_LOSSES = {
    "softmax": lambda: SoftmaxLoss(N_CLASSES, DIM),
    "center": lambda: CenterLoss(N_CLASSES, DIM),
    "large-margin-softmax": lambda: LargeMarginSoftmaxLoss(N_CLASSES, DIM),
    "sphereface": lambda: SphereFaceLoss(N_CLASSES, DIM),
    "cosface": lambda: CosFaceLoss(N_CLASSES, DIM),
    "arcface": lambda: ArcFaceLoss(N_CLASSES, DIM),
    "proxy-anchor": lambda: ProxyAnchorLoss(N_CLASSES, DIM),
    "sub-center-arcface": lambda: SubCenterArcFaceLoss(N_CLASSES, DIM),
}
LOSSES = {**TUPLE_LOSSES, **CLASSIFIER_LOSSES}
MINERS = {
    "batch_hard": lambda: BatchHardMiner(),
    "semihard": lambda: SemiHardMiner(distance="cosine"),
    "margin": lambda: TripletMarginMiner(type_of_triplets="all"),
    "multi_similarity": lambda: MultiSimilarityMiner(),
}


@st.composite
def batches(draw, non_finite):
    """A small float32 batch of ``DIM`` columns with labels in ``0..N_CLASSES - 1``.

    ``non_finite``: one of NaN, inf, -inf put at one to three places (which may repeat).
    """
    n = draw(st.integers(2, 8))
    labels = torch.tensor(draw(st.lists(st.integers(0, N_CLASSES - 1), min_size=n, max_size=n)))
    entries = st.floats(-8.0, 8.0, width=32) | st.just(0.0)
    x = torch.tensor(draw(st.lists(entries, min_size=n * DIM, max_size=n * DIM)))
    x = x.reshape(n, DIM)
    if non_finite:
        bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        places = st.tuples(st.integers(0, n - 1), st.integers(0, DIM - 1))
        for i, j in draw(st.lists(places, min_size=1, max_size=3)):
            x[i, j] = bad
    return x, labels


@functools.cache
def built(loss):
    torch.manual_seed(0)  # the classifier losses' weights
    return LOSSES[loss]()


def value_and_grad(loss, x, labels):
    x = x.clone().requires_grad_(True)
    value = built(loss)(x, labels)
    value.backward()
    return value.detach(), x.grad


@settings(max_examples=15, deadline=None)
@given(batch=batches(non_finite=True))
@pytest.mark.parametrize("loss", LOSSES)
def test_non_finite_embeddings_give_a_non_finite_loss(loss, batch):
    x, labels = batch
    value, _ = value_and_grad(loss, x, labels)
    if torch.isnan(x).any() or loss in TUPLE_LOSSES:
        assert torch.isnan(value)
    else:  # an infinity can give an infinite softmax cross-entropy
        assert not torch.isfinite(value)


@settings(max_examples=15, deadline=None)
@given(batch=batches(non_finite=False))
@pytest.mark.parametrize("loss", LOSSES)
def test_finite_embeddings_give_finite_loss_and_gradients(loss, batch):
    x, labels = batch
    value, grad = value_and_grad(loss, x, labels)
    assert torch.isfinite(value) and torch.isfinite(grad).all()


@settings(max_examples=15, deadline=None)
@given(batch=batches(non_finite=True))
@pytest.mark.parametrize("miner", MINERS)
def test_miners_reject_non_finite_embeddings(miner, batch):
    x, labels = batch
    row = int(torch.nonzero(~torch.isfinite(x).all(dim=1))[0])
    with pytest.raises(ValueError, match=rf"`embeddings` must be finite .* in row {row}\b"):
        MINERS[miner]()(x, labels)


@pytest.mark.parametrize("miner", ["batch_hard", "margin"])  # Euclidean (not cosine)
def test_miners_reject_embeddings_whose_distances_overflow(miner):
    x = torch.ones(4, DIM)
    x[2] = 2e19  # finite, but its squared norm is inf in float32
    with pytest.raises(ValueError, match=r"norm of inf \(overflowing distances\) in row 2"):
        MINERS[miner]()(x, torch.tensor([0, 0, 1, 1]))


@pytest.mark.parametrize("loss", ["triplet-semihard", "contrastive"])
def test_one_nan_row_gives_a_nan_loss(loss):
    # the rows without the NaN used to give a finite loss, every gradient NaN
    e = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    e[0] = math.nan
    value, grad = value_and_grad(loss, e, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    assert torch.isnan(value) and torch.isnan(grad).all()


def test_huge_finite_embeddings_give_a_nan_loss_not_a_wrong_one():
    x = torch.ones(4, DIM)
    x[2] = 2e19
    value, _ = value_and_grad("triplet-all", x, torch.tensor([0, 0, 1, 1]))
    assert torch.isnan(value)


# ------------------------------------------------------------------ half precision


@pytest.mark.parametrize("autocast", [False, True])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("loss", LOSSES)
def test_half_precision_is_computed_in_float32(loss, dtype, autocast):
    # autocast: a mixed-precision training loop, whose network gives half-precision
    # embeddings; the loss is what it is on them outside autocast (no half-precision products)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(12, DIM, generator=gen).to(dtype)
    labels = torch.arange(12) % N_CLASSES
    with torch.autocast("cpu", dtype=dtype, enabled=autocast):
        x_grad = x.clone().requires_grad_(True)
        value = built(loss)(x_grad, labels)
    value.backward()  # outside autocast, as torch's mixed-precision recipe has it
    full_value, full_grad = value_and_grad(loss, x.float(), labels)
    assert value.dtype == torch.float32 and x_grad.grad.dtype == dtype
    assert value == full_value
    torch.testing.assert_close(x_grad.grad, full_grad.to(dtype), rtol=0, atol=0)


@pytest.mark.parametrize(
    "loss",
    [
        "triplet-semihard-cosine",
        "npairs-cosine",
        "angular",
        "contrastive-cosine",
        "multi-similarity",
        "supcon",
    ],
)
@pytest.mark.parametrize("row", [0.0, 1e-8])
def test_half_precision_tiny_rows_stay_finite(loss, row):
    # in float16 a zero or 1e-8 row gave NaN (1e-8 underflows, and so does normalize's eps)
    x = torch.randn(8, DIM, generator=torch.Generator().manual_seed(2))
    x[3] = row
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 0, 1])
    value, grad = value_and_grad(loss, x.half(), labels)
    assert torch.isfinite(value) and torch.isfinite(grad[torch.arange(8) != 3]).all()
    # the gradient of x / |x| grows as 1 / |x|: a tiny row's overflows float16 (to inf, which
    # a gradient scaler skips), not float32
    assert not torch.isnan(grad).any()
    assert torch.isfinite(value_and_grad(loss, x.half().float(), labels)[1]).all()


def test_half_precision_squared_euclidean_does_not_overflow():
    # squared distances up to ~4 * 1206 overflowed float16's products in a float16 loss
    x = torch.randn(55, 21, generator=torch.Generator().manual_seed(3))
    x = x * (1206 / (x * x).sum(dim=1).max()).sqrt()
    labels = torch.arange(55) % 5
    value, _ = value_and_grad("contrastive-squared", x.half(), labels)
    full_value, _ = value_and_grad("contrastive-squared", x.half().float(), labels)
    assert torch.isfinite(value) and value == full_value


@pytest.mark.parametrize("miner", MINERS)
def test_miners_take_half_precision(miner):
    x = torch.randn(12, DIM, generator=torch.Generator().manual_seed(4)).half()
    labels = torch.arange(12) % N_CLASSES
    for half, full in zip(MINERS[miner]()(x, labels), MINERS[miner]()(x.float(), labels)):
        assert torch.equal(half, full)


# ------------------------------------------------------------------ sparse tensors


@pytest.mark.parametrize("loss", LOSSES)
def test_sparse_embeddings_are_an_error(loss):
    x, labels = torch.randn(6, DIM), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"`embeddings` must be a dense tensor, got layout"):
        LOSSES[loss]()(x.to_sparse(), labels)
    with pytest.raises(ValueError, match=r"`labels` must be a dense tensor, got layout"):
        LOSSES[loss]()(x, labels.to_sparse())


@pytest.mark.parametrize("miner", MINERS)
def test_miners_reject_sparse_embeddings(miner):
    x, labels = torch.randn(6, DIM), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match=r"`embeddings` must be a dense tensor"):
        MINERS[miner]()(x.to_sparse(), labels)


@pytest.mark.parametrize("loss", CLASSIFIER_LOSSES)
def test_half_precision_class_weights_are_an_error(loss):
    module = LOSSES[loss]().half()
    with pytest.raises(ValueError, match=r"parameters are torch.float16: .* `loss.float\(\)`"):
        module(torch.randn(6, DIM).half(), torch.tensor([0, 0, 1, 1, 2, 2]))
