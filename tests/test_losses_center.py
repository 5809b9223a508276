import math

import pytest
import torch
from torch.func import functional_call

from sk_deepmetric.losses._center import CenterLoss

N_CLASSES, DIM = 5, 4

LAYOUTS = {
    "four_per_class": [c for c in range(N_CLASSES) for _ in range(4)],
    "two_large_classes": [1] * 6 + [4] * 7,
    "all_distinct": list(range(N_CLASSES)),
    "single_class": [3] * 6,
}


def reference_center_loss(x, labels, weight, bias, centers, center_weight):
    """Softmax cross-entropy plus 0.5 * lambda * ||x - c_y||^2, one sample at a time."""
    x, labels = x.tolist(), labels.tolist()
    weight, bias, centers = weight.tolist(), bias.tolist(), centers.tolist()
    total = 0.0
    for xi, yi in zip(x, labels):
        logits = [sum(a * b for a, b in zip(xi, wj)) + bj for wj, bj in zip(weight, bias)]
        top = max(logits)
        total += top + math.log(sum(math.exp(z - top) for z in logits)) - logits[yi]
        total += center_weight * 0.5 * sum((a - c) ** 2 for a, c in zip(xi, centers[yi]))
    return total / len(x)


def _make(center_weight=0.1, seed=0):
    loss = CenterLoss(N_CLASSES, DIM, center_weight=center_weight).double()
    loss.reset_parameters(torch.Generator().manual_seed(seed))
    return loss


@pytest.mark.parametrize("center_weight", [0.0, 0.003, 0.5])
@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_matches_loop_reference(layout, center_weight):
    loss = _make(center_weight)
    labels = torch.tensor(LAYOUTS[layout])
    x = torch.randn(len(labels), DIM, generator=torch.Generator().manual_seed(1))
    x = x.double()
    want = reference_center_loss(
        x,
        labels,
        loss.softmax.weight.detach(),
        loss.softmax.bias.detach(),
        loss.centers.detach(),
        center_weight,
    )
    assert loss(x, labels).item() == pytest.approx(want, rel=1e-6, abs=1e-6)


def test_gradcheck_embeddings_weights_and_centres():
    loss = _make(center_weight=0.7)
    labels = torch.tensor([0, 0, 1, 3, 3, 4])
    g = torch.Generator().manual_seed(2)
    x = torch.randn(len(labels), DIM, generator=g, dtype=torch.float64, requires_grad=True)
    tensors = {name: p.detach().clone().requires_grad_() for name, p in loss.named_parameters()}
    assert set(tensors) == {"softmax.weight", "softmax.bias", "centers"}

    def f(x, *values):
        return functional_call(loss, dict(zip(tensors, values)), (x, labels))

    assert torch.autograd.gradcheck(f, (x, *tensors.values()))


def test_centre_gradient_is_the_weighted_mean_offset():
    loss = _make(center_weight=0.5)
    labels = torch.tensor([2, 2, 0])
    x = torch.randn(3, DIM, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    loss(x, labels).backward()
    c = loss.centers.detach()
    want = torch.zeros_like(c)
    for xi, yi in zip(x, labels.tolist()):
        want[yi] += 0.5 * (c[yi] - xi) / len(labels)
    torch.testing.assert_close(loss.centers.grad, want)


def test_reset_parameters_uses_only_the_generator():
    a, b = CenterLoss(N_CLASSES, DIM), CenterLoss(N_CLASSES, DIM)
    a.reset_parameters(torch.Generator().manual_seed(4))
    torch.manual_seed(99)
    b.reset_parameters(torch.Generator().manual_seed(4))
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name
    b.reset_parameters(torch.Generator().manual_seed(5))
    assert not torch.equal(a.centers, b.centers)


def test_optimiser_moves_weights_and_centres():
    loss = CenterLoss(N_CLASSES, DIM, center_weight=1.0)
    loss.reset_parameters(torch.Generator().manual_seed(6))
    before = {name: p.detach().clone() for name, p in loss.named_parameters()}
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.1)
    x = torch.randn(10, DIM, generator=torch.Generator().manual_seed(7))
    loss(x, torch.arange(10) % N_CLASSES).backward()
    optimizer.step()
    for name, p in loss.named_parameters():
        assert not torch.equal(before[name], p), name


def test_logits_are_the_softmax_classifier():
    loss = _make()
    x = torch.randn(3, DIM, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    want = x @ loss.softmax.weight.detach().T + loss.softmax.bias.detach()
    torch.testing.assert_close(loss.logits(x), want)


def test_empty_batch_gives_zero_with_a_graph():
    loss = CenterLoss(3, 2)
    value = loss(torch.zeros(0, 2), torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((1, DIM), r"`n_classes` must be in the range \[2, inf\], got 1"),
        ((N_CLASSES, 0), r"`n_components` must be in the range \[1, inf\], got 0"),
        ((N_CLASSES, 2.0), r"`n_components` must be an integer, got 2\.0"),
        ((N_CLASSES, DIM, -0.1), r"`center_weight` must be in the range \[0\.0, inf\], got -0\.1"),
        ((N_CLASSES, DIM, float("inf")), r"`center_weight` must be finite"),
    ],
)
def test_invalid_hyperparameters(args, match):
    with pytest.raises(ValueError, match=match):
        CenterLoss(*args)


def test_invalid_inputs():
    loss = CenterLoss(N_CLASSES, DIM)
    x = torch.randn(3, DIM)
    with pytest.raises(ValueError, match=r"must have `n_components`=4 columns, got 2"):
        loss(torch.randn(3, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`labels` must be in 0\.\.4 \(`n_classes`=5\)"):
        loss(x, torch.tensor([0, 5, 1]))
    with pytest.raises(ValueError, match=r"one label per embedding \(3\)"):
        loss(x, torch.zeros(2, dtype=torch.long))
