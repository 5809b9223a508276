import math

import pytest
import torch
from torch.func import functional_call

from sk_deepmetric.losses._margin_softmax import (
    ArcFaceLoss,
    CosFaceLoss,
    LargeMarginSoftmaxLoss,
    SoftmaxLoss,
    SphereFaceLoss,
)

N_CLASSES, DIM = 6, 5

# label layouts: 4 per class; 2 large classes; all distinct; a single class present
LAYOUTS = {
    "four_per_class": [c for c in range(N_CLASSES) for _ in range(4)],
    "two_large_classes": [0] * 7 + [3] * 6,
    "all_distinct": list(range(N_CLASSES)),
    "single_class": [2] * 5,
}


# --------------------------------------------------------------------------- references
def _dot(a, b):
    return sum(p * q for p, q in zip(a, b))


def _norm(a):
    return math.sqrt(_dot(a, a))


def _cross_entropy(logits, target):
    top = max(logits)
    return top + math.log(sum(math.exp(z - top) for z in logits)) - logits[target]


def _psi(theta, m):
    k = min(int(theta // (math.pi / m)), m - 1)
    return (-1) ** k * math.cos(m * theta) - 2 * k


def reference_loss(kind, x, labels, weight, bias=None, margin=None, scale=None, lam=0.0):
    """One sample and one class at a time, with math.acos / math.cos per sample."""
    x, labels, weight = x.tolist(), labels.tolist(), weight.tolist()
    bias = bias.tolist() if bias is not None else [0.0] * len(weight)
    total = 0.0
    for xi, yi in zip(x, labels):
        logits = []
        for j, wj in enumerate(weight):
            cos = _dot(xi, wj) / (_norm(xi) * _norm(wj))
            theta = math.acos(max(-1.0, min(1.0, cos)))
            if kind == "softmax":
                logits.append(_dot(xi, wj) + bias[j])
            elif kind in ("lsoftmax", "sphereface"):
                radius = _norm(xi) * (_norm(wj) if kind == "lsoftmax" else 1.0)
                if j == yi:
                    logits.append(radius * (lam * cos + _psi(theta, margin)) / (1 + lam))
                else:
                    logits.append(radius * cos)
            elif kind == "cosface":
                logits.append(scale * (cos - margin if j == yi else cos))
            elif kind == "arcface":
                if j != yi:
                    logits.append(scale * cos)
                elif theta + margin < math.pi:
                    logits.append(scale * math.cos(theta + margin))
                else:
                    logits.append(scale * (cos - margin * math.sin(margin)))
        total += _cross_entropy(logits, yi)
    return total / len(x)


# --------------------------------------------------------------------------- inputs
def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _at_angles(weight, labels, angles, g):
    """Embeddings whose angle to their class weight is ``angles[i]``, random norm."""
    rows = []
    for label, theta in zip(labels.tolist(), angles):
        w = weight[label] / weight[label].norm()
        u = torch.randn(weight.shape[1], generator=g, dtype=weight.dtype)
        u = u - (u @ w) * w
        u = u / u.norm()
        norm = 0.5 + 2 * torch.rand((), generator=g, dtype=weight.dtype)
        rows.append(norm * (math.cos(theta) * w + math.sin(theta) * u))
    return torch.stack(rows)


def _make(cls, seed=0, **params):
    loss = cls(N_CLASSES, DIM, **params).double()
    loss.reset_parameters(_generator(seed))
    return loss


def _labels(layout):
    return torch.tensor(LAYOUTS[layout])


def _reference_kwargs(loss):
    kinds = {
        SoftmaxLoss: "softmax",
        LargeMarginSoftmaxLoss: "lsoftmax",
        SphereFaceLoss: "sphereface",
        CosFaceLoss: "cosface",
        ArcFaceLoss: "arcface",
    }
    kwargs = {"kind": kinds[type(loss)], "weight": loss.weight.detach(), "bias": loss.bias}
    if kwargs["bias"] is not None:
        kwargs["bias"] = kwargs["bias"].detach()
    if hasattr(loss, "margin"):
        kwargs["margin"] = loss.margin
    if hasattr(loss, "softmax_weight"):
        kwargs["lam"] = loss.softmax_weight
    if isinstance(loss, (CosFaceLoss, ArcFaceLoss)):
        kwargs["scale"] = loss.scale
    return kwargs


ALL_LOSSES = [
    (SoftmaxLoss, {}),
    (LargeMarginSoftmaxLoss, {"margin": 2}),
    (LargeMarginSoftmaxLoss, {"margin": 3, "softmax_weight": 5.0}),
    (SphereFaceLoss, {"margin": 4}),
    (CosFaceLoss, {"margin": 0.35, "scale": 64.0}),
    (ArcFaceLoss, {"margin": 0.5, "scale": 64.0}),
]
IDS = [f"{cls.__name__}-{params}" for cls, params in ALL_LOSSES]


# --------------------------------------------------------------------------- values
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_matches_loop_reference_on_random_batches(cls, params, layout):
    loss = _make(cls, **params)
    labels = _labels(layout)
    x = torch.randn(len(labels), DIM, generator=_generator(1), dtype=torch.float64)
    want = reference_loss(x=x, labels=labels, **_reference_kwargs(loss))
    assert loss(x, labels).item() == pytest.approx(want, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("margin", [2, 3, 4])
@pytest.mark.parametrize("cls", [LargeMarginSoftmaxLoss, SphereFaceLoss])
def test_multiplicative_margin_in_every_k_interval(cls, margin, layout):
    loss = _make(cls, margin=margin)
    labels = _labels(layout)
    g = _generator(2)
    # sample i lies inside interval k = i mod m of [k pi/m, (k+1) pi/m]
    offsets = 0.05 + 0.9 * torch.rand(len(labels), generator=g, dtype=torch.float64)
    angles = [(i % margin + float(u)) * math.pi / margin for i, u in enumerate(offsets)]
    x = _at_angles(loss.weight.detach(), labels, angles, g)
    want = reference_loss(x=x, labels=labels, **_reference_kwargs(loss))
    assert loss(x, labels).item() == pytest.approx(want, rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_arcface_beyond_pi_uses_the_additive_fallback(layout):
    loss = _make(ArcFaceLoss, margin=0.5, scale=64.0)
    labels = _labels(layout)
    # alternate angles with theta + m < pi (odd i) and theta + m > pi (even i)
    angles = [(0.3 + 0.1 * i) % 2.6 if i % 2 else math.pi - 0.4 + 0.01 * i for i in range(24)]
    angles = angles[: len(labels)]
    assert any(a + 0.5 > math.pi for a in angles) and any(a + 0.5 < math.pi for a in angles)
    x = _at_angles(loss.weight.detach(), labels, angles, _generator(3))
    want = reference_loss(x=x, labels=labels, **_reference_kwargs(loss))
    assert loss(x, labels).item() == pytest.approx(want, rel=1e-6, abs=1e-6)


def test_arcface_target_logit_decreases_with_the_angle():
    loss = ArcFaceLoss(2, 2, margin=0.5, scale=1.0).double()
    cosine = torch.cos(torch.linspace(0, math.pi, 1001, dtype=torch.float64))
    target = loss._target_cosine(cosine)
    assert torch.all(target[1:] < target[:-1])


@pytest.mark.parametrize("margin", [1, 2, 3, 4, 5])
def test_psi_is_continuous_and_decreasing(margin):
    loss = LargeMarginSoftmaxLoss(2, 2, margin=margin).double()
    angles = torch.linspace(0, math.pi, 2001, dtype=torch.float64)
    psi = loss._target_cosine(torch.cos(angles))
    assert torch.all(psi[1:] < psi[:-1])
    assert (psi[1:] - psi[:-1]).abs().max() < 0.05
    assert psi[0].item() == pytest.approx(1.0)
    assert psi[-1].item() == pytest.approx(1.0 - 2 * margin)


def test_margins_make_the_loss_larger_than_plain_logits():
    g = _generator(4)
    x = torch.randn(12, DIM, generator=g, dtype=torch.float64)
    labels = torch.randint(0, N_CLASSES, (12,), generator=g)
    for cls, params in ALL_LOSSES[1:]:
        loss = _make(cls, **params)
        plain = torch.nn.functional.cross_entropy(loss.logits(x), labels)
        assert loss(x, labels) > plain


def test_zero_margin_is_plain_normalised_softmax():
    x = torch.randn(8, DIM, generator=_generator(5), dtype=torch.float64)
    labels = torch.arange(8) % N_CLASSES
    arc = _make(ArcFaceLoss, margin=0.0, scale=10.0)
    cos = _make(CosFaceLoss, margin=0.0, scale=10.0)
    plain = torch.nn.functional.cross_entropy(cos.logits(x), labels)
    torch.testing.assert_close(arc(x, labels), plain)
    torch.testing.assert_close(cos(x, labels), plain)


@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_logits_are_plain_class_scores(cls, params):
    loss = _make(cls, **params)
    x = torch.randn(7, DIM, generator=_generator(6), dtype=torch.float64)
    w = loss.weight.detach()
    if cls is SoftmaxLoss:
        want = x @ w.T + loss.bias.detach()
    elif cls is LargeMarginSoftmaxLoss:
        want = x @ w.T
    else:
        cos = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(w, dim=1).T
        want = cos * (x.norm(dim=1, keepdim=True) if cls is SphereFaceLoss else loss.scale)
    torch.testing.assert_close(loss.logits(x), want)


@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_float32_is_close_to_float64(cls, params):
    loss64 = _make(cls, **params)
    loss32 = cls(N_CLASSES, DIM, **params)
    loss32.load_state_dict({k: v.float() for k, v in loss64.state_dict().items()})
    x = torch.randn(16, DIM, generator=_generator(7), dtype=torch.float64)
    labels = torch.arange(16) % N_CLASSES
    # float32 puts each cosine within 20 u = 1.2e-6 of exact (rounding x and w, unit rows of 5
    # components, one dot product); a logit moves by that times its slope in cos (ArcFace
    # 64 (1 + |cot|) <= 224 at |cos| <= 0.93, L-Softmax m^2 |x| |w| <= 9 x 4.1 x 0.61,
    # SphereFace m^2 |x| <= 16 x 4.1), cross-entropy by at most twice the largest logit change:
    # relative to the loss, at most 2.6e-5 (L-Softmax m=3: 2 x 1.2e-6 x 22.5 / 2.07).
    assert loss32(x.float(), labels).item() == pytest.approx(loss64(x, labels).item(), rel=1e-4)


# --------------------------------------------------------------------------- gradients
def _gradcheck_params(cls, params):
    # a smaller scale keeps the finite differences of the normalised losses accurate
    return {**params, "scale": 4.0} if "scale" in params else params


@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_gradcheck_embeddings_and_weights(cls, params):
    loss = _make(cls, **_gradcheck_params(cls, params))
    g = _generator(8)
    labels = torch.tensor([0, 1, 1, 2, 3, 3, 5, 5])
    x = torch.randn(len(labels), DIM, generator=g, dtype=torch.float64, requires_grad=True)
    tensors = {name: p.detach().clone().requires_grad_() for name, p in loss.named_parameters()}

    def f(x, *values):
        return functional_call(loss, dict(zip(tensors, values)), (x, labels))

    assert torch.autograd.gradcheck(f, (x, *tensors.values()))


@pytest.mark.parametrize("cls", [LargeMarginSoftmaxLoss, SphereFaceLoss])
def test_gradcheck_in_every_k_interval(cls):
    loss = _make(cls, margin=4)
    labels = torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])
    angles = [(i % 4 + 0.5) * math.pi / 4 for i in range(len(labels))]
    x = _at_angles(loss.weight.detach(), labels, angles, _generator(9)).requires_grad_()
    w = loss.weight.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, w: functional_call(loss, {"weight": w}, (x, labels)), (x, w)
    )


@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_gradients_finite_when_embedding_is_on_a_class_axis(cls, params):
    # |cos| = 1 exactly, where acos and sqrt(1 - cos^2) have infinite derivatives
    loss = _make(cls, **params)
    w = loss.weight.detach()
    x = torch.stack([2 * w[0], -3 * w[1], w[2]]).requires_grad_()
    value = loss(x, torch.tensor([0, 1, 1]))
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(x.grad).all()
    assert torch.isfinite(loss.weight.grad).all()


# --------------------------------------------------------------------------- pml
def _pml_loss(loss):
    from pytorch_metric_learning import losses as pml

    n, d = loss.n_classes, loss.n_components
    if isinstance(loss, CosFaceLoss):
        theirs = pml.CosFaceLoss(n, d, margin=loss.margin, scale=loss.scale)
    elif isinstance(loss, ArcFaceLoss):
        theirs = pml.ArcFaceLoss(n, d, margin=math.degrees(loss.margin), scale=loss.scale)
    elif isinstance(loss, SphereFaceLoss):
        theirs = pml.SphereFaceLoss(n, d, margin=loss.margin, scale=1)
    else:
        theirs = pml.LargeMarginSoftmaxLoss(n, d, margin=loss.margin, scale=1)
    theirs.W.data = loss.weight.detach().T.clone()  # pml stores (embedding_size, num_classes)
    return theirs


PML_CASES = [
    (CosFaceLoss, {"margin": 0.35, "scale": 64.0}),
    (ArcFaceLoss, {"margin": 0.5, "scale": 64.0}),
    (LargeMarginSoftmaxLoss, {"margin": 2}),
    (LargeMarginSoftmaxLoss, {"margin": 4}),
    (SphereFaceLoss, {"margin": 4}),
]


# pml builds its binomial table with scipy on a tensor, which numpy 2 warns about
@pytest.mark.filterwarnings("ignore::DeprecationWarning:pytorch_metric_learning")
@pytest.mark.parametrize("layout", ["four_per_class", "two_large_classes"])
@pytest.mark.parametrize(("cls", "params"), PML_CASES, ids=[c.__name__ for c, _ in PML_CASES])
def test_matches_pytorch_metric_learning(cls, params, layout):
    loss = _make(cls, **params)
    labels = _labels(layout)
    g = _generator(10)
    angles = (0.05 + 2.5 * torch.rand(len(labels), generator=g, dtype=torch.float64)).tolist()
    x = _at_angles(loss.weight.detach(), labels, angles, g)  # theta + 0.5 < pi for ArcFace
    want = _pml_loss(loss)(x, labels)
    torch.testing.assert_close(loss(x, labels), want, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- parameters
@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_reset_parameters_uses_only_the_generator(cls, params):
    a = cls(N_CLASSES, DIM, **params)
    b = cls(N_CLASSES, DIM, **params)
    a.reset_parameters(_generator(11))
    torch.manual_seed(123)  # global state must not matter
    b.reset_parameters(_generator(11))
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    c = cls(N_CLASSES, DIM, **params)
    c.reset_parameters(_generator(12))
    assert not torch.equal(a.weight, c.weight)


@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_parameters_are_trained_by_an_optimiser(cls, params):
    loss = cls(N_CLASSES, DIM, **params)
    loss.reset_parameters(_generator(13))
    expected = {"weight", "bias"} if cls is SoftmaxLoss else {"weight"}
    assert {name for name, _ in loss.named_parameters()} == expected
    before = [p.detach().clone() for p in loss.parameters()]
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.1)
    x = torch.randn(12, DIM, generator=_generator(14))
    loss(x, torch.arange(12) % N_CLASSES).backward()
    optimizer.step()
    for old, new in zip(before, loss.parameters()):
        assert not torch.equal(old, new)


def test_repr_lists_hyperparameters():
    text = repr(ArcFaceLoss(3, 4))
    assert "margin=0.5" in text and "scale=64.0" in text and "n_classes=3" in text


def test_empty_batch_gives_zero_with_a_graph():
    loss = ArcFaceLoss(3, 4)
    value = loss(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0


# --------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("cls", "params", "match"),
    [
        (LargeMarginSoftmaxLoss, {"margin": 2.0}, r"`margin` must be an integer, got 2\.0"),
        (SphereFaceLoss, {"margin": 4.0}, r"`margin` must be an integer, got 4\.0"),
        (LargeMarginSoftmaxLoss, {"margin": 0}, r"`margin` must be in the range \[1, inf\]"),
        (SphereFaceLoss, {"margin": -1}, r"`margin` must be in the range \[1, inf\], got -1"),
        (SphereFaceLoss, {"margin": True}, r"`margin` must be an integer, got True"),
        (LargeMarginSoftmaxLoss, {"softmax_weight": -1.0}, r"`softmax_weight` must be in"),
        (CosFaceLoss, {"margin": 1.0}, r"subtracted from the target cosine .* \[0, 1\), got 1\.0"),
        (CosFaceLoss, {"margin": -0.1}, r"`margin` .* must be in \[0, 1\), got -0\.1"),
        (CosFaceLoss, {"scale": 0}, r"`scale` must be in the range \(0\.0, inf\), got 0\.0"),
        (ArcFaceLoss, {"scale": -64}, r"`scale` must be in the range \(0\.0, inf\), got -64"),
        (ArcFaceLoss, {"margin": 28.6}, r"`margin` is an angle in radians .* got 28\.6"),
        (ArcFaceLoss, {"margin": math.pi / 2}, r"must be in \[0, pi/2\), got 1\.57"),
        (ArcFaceLoss, {"margin": float("nan")}, r"`margin` must be finite"),
        (ArcFaceLoss, {"margin": "0.5"}, r"`margin` must be a real number, got '0\.5'"),
    ],
)
def test_invalid_hyperparameters(cls, params, match):
    with pytest.raises(ValueError, match=match):
        cls(N_CLASSES, DIM, **params)


@pytest.mark.parametrize("cls", [c for c, _ in ALL_LOSSES])
def test_invalid_sizes(cls):
    with pytest.raises(ValueError, match=r"`n_classes` must be in the range \[2, inf\], got 1"):
        cls(1, DIM)
    with pytest.raises(ValueError, match=r"`n_components` must be in the range \[1, inf\]"):
        cls(N_CLASSES, 0)
    with pytest.raises(ValueError, match=r"`n_classes` must be an integer, got 3\.0"):
        cls(3.0, DIM)


@pytest.mark.parametrize(("cls", "params"), ALL_LOSSES, ids=IDS)
def test_invalid_inputs(cls, params):
    loss = cls(N_CLASSES, DIM, **params)
    x = torch.randn(4, DIM)
    with pytest.raises(
        ValueError, match=r"`embeddings` must have `n_components`=5 columns, got 3"
    ):
        loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`embeddings` must have `n_components`=5 columns"):
        loss.logits(torch.randn(4, 3))
    with pytest.raises(ValueError, match=r"`labels` must be in 0\.\.5 \(`n_classes`=6\), got"):
        loss(x, torch.tensor([0, 1, 2, 6]))
    with pytest.raises(ValueError, match=r"`labels` must be in 0\.\.5 .* got values in -1\.\.2"):
        loss(x, torch.tensor([0, -1, 2, 2]))
    with pytest.raises(ValueError, match=r"`embeddings` must be a 2-D tensor"):
        loss(torch.randn(DIM), torch.zeros(1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`embeddings` must be a 2-D tensor"):
        loss.logits(torch.randn(DIM))
    with pytest.raises(ValueError, match=r"one label per embedding \(4\), got shape \(3,\)"):
        loss(x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`labels` must be an integer tensor"):
        loss(x, torch.zeros(4))
    with pytest.raises(ValueError, match=r"dtype torch\.float64 does not match .*torch\.float32"):
        loss(x.double(), torch.zeros(4, dtype=torch.long))
