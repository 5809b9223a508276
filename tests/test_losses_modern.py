"""Multi-similarity, SupCon, Proxy-Anchor and sub-centre ArcFace losses.

Each against a loop-over-samples reference (plain Python floats), ``gradcheck`` in float64
and pytorch-metric-learning. Tolerances are bounds from the arithmetic (``_rounding``): a
cosine of unit vectors of ``DIM`` components computed in precision ``u`` is within
``cosine_distance_error(DIM, 2, u)`` of exact, and every loss here is Lipschitz in the
cosines with a constant stated at its test; where a loss selects pairs by comparing cosines
(mining), the test first checks that no comparison lies within that error of its threshold,
so that the selection cannot depend on the CPU, the BLAS or the thread count.
"""

import math

import pytest
import torch
from _rounding import U32, U64, cosine_distance_error, gamma
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners
from torch.func import functional_call

from sk_deepmetric import _blocks
from sk_deepmetric.losses import (
    ArcFaceLoss,
    MultiSimilarityLoss,
    ProxyAnchorLoss,
    SubCenterArcFaceLoss,
    SupConLoss,
)
from sk_deepmetric.miners import MultiSimilarityMiner

DIM = 5
LAYOUTS = ["4_per_class", "2_large", "distinct", "single", "negative_noncontiguous"]


def make_batch(layout, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    if layout == "4_per_class":
        labels = torch.arange(5).repeat_interleave(4)
    elif layout == "2_large":
        labels = torch.tensor([0] * 9 + [1] * 8)
    elif layout == "distinct":
        labels = torch.arange(10)
    elif layout == "single":
        labels = torch.full((9,), 3)
    else:
        values = torch.tensor([-7, 3, 100, -1])
        labels = values[torch.randint(0, 4, (18,), generator=gen)]
    labels = labels[torch.randperm(labels.shape[0], generator=gen)]
    x = torch.randn(labels.shape[0], DIM, generator=gen, dtype=dtype)
    return x, labels


def value_and_grad(loss, x, labels):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels)
    value.backward()
    return value.detach(), x.grad


def cosine_error(u):
    """Bound on the error of any cosine of ``DIM``-vectors computed in precision ``u``."""
    return cosine_distance_error(DIM, 2.0, u)


# ---------------------------------------------------------------- references (plain loops)


def unit_rows(x):
    return [[v / math.sqrt(sum(c * c for c in row)) for v in row] for row in x.tolist()]


def cosines(x, y=None):
    a = unit_rows(x)
    b = a if y is None else unit_rows(y)
    return [[sum(p * q for p, q in zip(u, v)) for v in b] for u in a]


def pairs_of(labels, i):
    labels = labels.tolist()
    pos = [j for j in range(len(labels)) if j != i and labels[j] == labels[i]]
    neg = [j for j in range(len(labels)) if labels[j] != labels[i]]
    return pos, neg


def log1p_sum_exp(values):
    return math.log(1.0 + sum(math.exp(v) for v in values))


def ref_ms_pairs(s, labels, i, epsilon):
    pos, neg = pairs_of(labels, i)
    if epsilon is None:
        return pos, neg
    if not pos or not neg:
        return [], []
    least_pos, most_neg = min(s[i][j] for j in pos), max(s[i][j] for j in neg)
    return (
        [j for j in pos if s[i][j] < most_neg + epsilon],
        [j for j in neg if s[i][j] > least_pos - epsilon],
    )


def ref_multi_similarity(x, labels, alpha, beta, base, epsilon, n_anchors=None):
    """The anchors are the first ``n_anchors`` rows (default: all); the rest are references."""
    s = cosines(x)
    n_anchors = len(s) if n_anchors is None else n_anchors
    total = 0.0
    for i in range(n_anchors):
        pos, neg = ref_ms_pairs(s, labels, i, epsilon)
        total += log1p_sum_exp([-alpha * (s[i][j] - base) for j in pos]) / alpha
        total += log1p_sum_exp([beta * (s[i][j] - base) for j in neg]) / beta
    return total / n_anchors


def assert_ms_mining_is_certain(x, labels, epsilon, u):
    """No mined comparison within rounding (``2 cosine_error`` on a difference) of its edge."""
    s, margin = cosines(x), 2 * cosine_error(u) + 4 * u
    for i in range(len(s)):
        pos, neg = pairs_of(labels, i)
        if not pos or not neg:
            continue
        least_pos, most_neg = min(s[i][j] for j in pos), max(s[i][j] for j in neg)
        for j in pos:
            assert abs(s[i][j] - most_neg - epsilon) > margin
        for j in neg:
            assert abs(s[i][j] - least_pos + epsilon) > margin


# ---------------------------------------------------------------- multi-similarity

MS_PARAMS = [
    {},
    {"epsilon": None},
    {"alpha": 1.0, "beta": 10.0, "base": 0.2, "epsilon": 0.5},
    {"alpha": 4.0, "beta": 40.0, "base": -0.3, "epsilon": 0.0},
]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("params", MS_PARAMS, ids=repr)
def test_multi_similarity_matches_reference(layout, params):
    x, labels = make_batch(layout)
    loss = MultiSimilarityLoss(**params)
    want = ref_multi_similarity(x, labels, loss.alpha, loss.beta, loss.base, loss.epsilon)
    if loss.epsilon is not None:
        assert_ms_mining_is_certain(x, labels, loss.epsilon, U64)
    # the loss is 2-Lipschitz in the cosines (each term's soft-max weights sum to at most 1)
    assert loss(x, labels).item() == pytest.approx(want, rel=8 * U64, abs=4 * cosine_error(U64))


@pytest.mark.parametrize("params", MS_PARAMS, ids=repr)
def test_multi_similarity_gradcheck(params):
    x, labels = make_batch("4_per_class", seed=1)
    loss = MultiSimilarityLoss(**{"beta": 10.0, **params})  # finite differences of exp(50 s)
    if loss.epsilon is not None:
        assert_ms_mining_is_certain(x, labels, loss.epsilon, 1e-6)  # gradcheck's steps
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x.requires_grad_(),))


@pytest.mark.parametrize("layout", ["4_per_class", "2_large", "negative_noncontiguous"])
@pytest.mark.parametrize("epsilon", [0.1, 0.3, None])
def test_multi_similarity_matches_pml(layout, epsilon):
    x, labels = make_batch(layout, seed=2)
    pml = pml_losses.MultiSimilarityLoss(alpha=2, beta=50, base=0.5)
    if epsilon is None:
        expected = value_and_grad(pml, x, labels)
    else:
        assert_ms_mining_is_certain(x, labels, epsilon, U64)
        miner = pml_miners.MultiSimilarityMiner(epsilon)
        expected = value_and_grad(lambda e, y: pml(e, y, miner(e, y)), x, labels)
    got = value_and_grad(MultiSimilarityLoss(epsilon=epsilon), x, labels)
    # value: 2-Lipschitz in the cosines; gradient: each weight moves by at most beta times a
    # cosine's error, on at most n pairs per row, through x / |x| (|x| >= 0.3 here)
    n = len(labels)
    assert min(x.norm(dim=1)) > 0.3
    atol = 4 * cosine_error(U64)
    torch.testing.assert_close(got[0], expected[0], rtol=8 * U64, atol=atol)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=2 * 50 * n * atol / 0.3)


def test_multi_similarity_float32_is_within_rounding_of_float64():
    x, labels = make_batch("4_per_class", seed=3)
    loss = MultiSimilarityLoss()
    assert_ms_mining_is_certain(x, labels, loss.epsilon, U32)
    exact = loss(x, labels).item()
    # x rounded to float32 moves each cosine by <= 2 sqrt(DIM) u relatively more, then the
    # float32 cosine's own error; the loss is 2-Lipschitz in them; the sum over n anchors
    # rounds by gamma(n) of at most 2 (1/alpha log(1 + n e^alpha) + ...) each
    shift = 2 * math.sqrt(DIM) * U32 + cosine_error(U32)
    terms = 2 * (math.log(1 + 20 * math.e**3) / 2 + math.log(1 + 20 * math.e**25) / 50)
    bound = 2 * shift + gamma(20) * terms + U32 * exact
    assert abs(loss(x.float(), labels).item() - exact) <= bound


@pytest.mark.parametrize(("module", "setting"), [(_blocks, "BLOCK_BYTES")])
def test_multi_similarity_blocks_agree(monkeypatch, module, setting):
    x, labels = make_batch("negative_noncontiguous", seed=4)
    loss = MultiSimilarityLoss()
    whole = value_and_grad(loss, x, labels)
    monkeypatch.setattr(module, setting, 1)  # one anchor row per block
    blocked = value_and_grad(loss, x, labels)
    torch.testing.assert_close(blocked, whole, rtol=8 * U64, atol=8 * cosine_error(U64))


@pytest.mark.parametrize("layout", ["single", "distinct"])
def test_multi_similarity_without_pairs_is_zero_with_zero_gradient(layout):
    x, labels = make_batch(layout)
    value, grad = value_and_grad(MultiSimilarityLoss(), x, labels)
    assert value.item() == 0.0 and (grad == 0).all()


def test_multi_similarity_empty_batch():
    empty = torch.zeros(0, DIM), torch.zeros(0, dtype=torch.long)
    value, grad = value_and_grad(MultiSimilarityLoss(), *empty)
    assert value.item() == 0.0 and grad.shape == (0, DIM)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"alpha": 0}, r"`alpha` must be in the range \(0\.0, inf\), got 0\.0"),
        ({"beta": -50.0}, r"`beta` must be in the range \(0\.0, inf\), got -50\.0"),
        ({"base": 1.5}, r"`base` must be in the range \[-1\.0, 1\.0\], got 1\.5"),
        ({"epsilon": -0.1}, r"`epsilon` must be in the range \[0\.0, inf\], got -0\.1"),
        ({"epsilon": "0.1"}, r"`epsilon` must be a real number, got '0\.1'"),
        ({"alpha": math.inf}, r"`alpha` must be finite, got inf"),
    ],
)
def test_multi_similarity_invalid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        MultiSimilarityLoss(**params)


# ---------------------------------------------------------------- multi-similarity miner


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("epsilon", [0.0, 0.1, 0.5])
def test_multi_similarity_miner_matches_reference_and_pml(layout, epsilon):
    x, labels = make_batch(layout, seed=5)
    assert_ms_mining_is_certain(x, labels, epsilon, U64)
    a1, p, a2, n = MultiSimilarityMiner(epsilon)(x, labels)
    s = cosines(x)
    want_pos, want_neg = [], []
    for i in range(len(s)):
        pos, neg = ref_ms_pairs(s, labels, i, epsilon)
        want_pos += [(i, j) for j in pos]
        want_neg += [(i, j) for j in neg]
    assert list(zip(a1.tolist(), p.tolist())) == want_pos  # ordered by (anchor, other)
    assert list(zip(a2.tolist(), n.tolist())) == want_neg
    theirs = pml_miners.MultiSimilarityMiner(epsilon)(x, labels)
    assert sorted(zip(theirs[0].tolist(), theirs[1].tolist())) == want_pos
    assert sorted(zip(theirs[2].tolist(), theirs[3].tolist())) == want_neg


def test_multi_similarity_miner_blocks_agree(monkeypatch):
    x, labels = make_batch("2_large", seed=6)
    whole = MultiSimilarityMiner()(x, labels)
    monkeypatch.setattr(_blocks, "CHUNK_BYTES", 1)
    for a, b in zip(whole, MultiSimilarityMiner()(x, labels), strict=True):
        assert torch.equal(a, b)


def test_multi_similarity_miner_edge_cases():
    empty = MultiSimilarityMiner()(torch.zeros(0, DIM), torch.zeros(0, dtype=torch.long))
    assert len(empty) == 4 and all(t.numel() == 0 and t.dtype == torch.long for t in empty)
    with pytest.raises(ValueError, match=r"`embeddings` must be finite .* in row 1"):
        MultiSimilarityMiner()(torch.tensor([[1.0, 0.0], [math.nan, 0.0]]), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"`epsilon` must be in the range \[0\.0, inf\]"):
        MultiSimilarityMiner(epsilon=-1)
    assert repr(MultiSimilarityMiner()) == "MultiSimilarityMiner(epsilon=0.1)"


# ---------------------------------------------------------------- SupCon


def ref_supcon(x, labels, temperature, n_anchors=None):
    s = cosines(x)
    if len(set(labels.tolist())) < 2:
        return 0.0
    losses = []
    for i in range(len(s) if n_anchors is None else n_anchors):
        pos, neg = pairs_of(labels, i)
        if not pos:
            continue
        log_denominator = math.log(sum(math.exp(s[i][a] / temperature) for a in pos + neg))
        losses.append(-sum(s[i][p] / temperature - log_denominator for p in pos) / len(pos))
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("temperature", [0.05, 0.1, 1.0])
def test_supcon_matches_reference(layout, temperature):
    x, labels = make_batch(layout, seed=7)
    want = ref_supcon(x, labels, temperature)
    # (2 / t)-Lipschitz in the cosines: the softmax and the positives' weights sum to 1 each
    got = SupConLoss(temperature)(x, labels).item()
    assert got == pytest.approx(want, rel=8 * U64, abs=4 * cosine_error(U64) / temperature)


@pytest.mark.parametrize("layout", ["4_per_class", "negative_noncontiguous"])
@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_supcon_gradcheck(layout, temperature):
    x, labels = make_batch(layout, seed=8)
    loss = SupConLoss(temperature)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x.requires_grad_(),))


@pytest.mark.parametrize("layout", ["4_per_class", "2_large", "negative_noncontiguous"])
@pytest.mark.parametrize("temperature", [0.07, 0.1, 0.5])
def test_supcon_matches_pml(layout, temperature):
    x, labels = make_batch(layout, seed=9)
    expected = value_and_grad(pml_losses.SupConLoss(temperature), x, labels)
    got = value_and_grad(SupConLoss(temperature), x, labels)
    # value: (2 / t)-Lipschitz in the cosines; gradient: each softmax weight moves by at most
    # 2 / t times a cosine's error, on n columns per row, through x / |x| (|x| >= 0.3 here)
    n = len(labels)
    assert min(x.norm(dim=1)) > 0.3
    atol = 4 * cosine_error(U64) / temperature
    torch.testing.assert_close(got[0], expected[0], rtol=8 * U64, atol=atol)
    torch.testing.assert_close(got[1], expected[1], rtol=0, atol=2 * n * atol / temperature / 0.3)


def test_supcon_float32_is_within_rounding_of_float64():
    x, labels = make_batch("negative_noncontiguous", seed=10)
    t = 0.1
    exact = SupConLoss(t)(x, labels).item()
    # the cosines move by the rounding of x and their own float32 error; (2 / t)-Lipschitz;
    # each anchor's term (at most 2 / t + log n) rounds by gamma(n + 2), their mean gamma(n)
    n = len(labels)
    shift = 2 * math.sqrt(DIM) * U32 + cosine_error(U32)
    bound = 2 * shift / t + (gamma(n + 2) + gamma(n)) * (2 / t + math.log(n)) + U32 * exact
    assert abs(SupConLoss(t)(x.float(), labels).item() - exact) <= bound


def test_supcon_blocks_agree(monkeypatch):
    x, labels = make_batch("negative_noncontiguous", seed=11)
    whole = value_and_grad(SupConLoss(), x, labels)
    monkeypatch.setattr(_blocks, "BLOCK_BYTES", 1)
    blocked = value_and_grad(SupConLoss(), x, labels)
    torch.testing.assert_close(blocked, whole, rtol=8 * U64, atol=8 * cosine_error(U64) / 0.1)


@pytest.mark.parametrize("layout", ["single", "distinct"])
def test_supcon_without_positives_or_negatives_is_zero_with_zero_gradient(layout):
    x, labels = make_batch(layout)
    value, grad = value_and_grad(SupConLoss(), x, labels)
    assert value.item() == 0.0 and (grad == 0).all()


def test_supcon_anchor_without_positive_only_pushes():
    x, labels = make_batch("4_per_class", seed=12)
    labels[0] = 99  # sample 0 alone in its class: a negative of the others, not an anchor
    want = ref_supcon(x, labels, 0.1)
    assert SupConLoss()(x, labels).item() == pytest.approx(want, rel=1e-12)
    _, grad = value_and_grad(SupConLoss(), x, labels)
    assert (grad[0] != 0).any()


@pytest.mark.parametrize("temperature", [0, -0.1, math.nan, "0.1"])
def test_supcon_invalid_temperature(temperature):
    with pytest.raises(ValueError, match=r"`temperature` must be"):
        SupConLoss(temperature)
    if temperature == 0:
        with pytest.raises(ValueError, match=r"in the range \(0\.0, inf\), got 0\.0"):
            SupConLoss(temperature)


# ---------------------------------------------------------------- Proxy-Anchor

N_CLASSES = 6
CLASS_LAYOUTS = {
    "four_per_class": [c for c in range(N_CLASSES) for _ in range(4)],
    "two_present": [0] * 7 + [3] * 6,
    "all_distinct": list(range(N_CLASSES)),
    "single_class": [2] * 5,
}


def class_batch(layout, seed=0, dtype=torch.float64):
    labels = torch.tensor(CLASS_LAYOUTS[layout])
    x = torch.randn(len(labels), DIM, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return x, labels


def make_proxy_anchor(seed=0, **params):
    loss = ProxyAnchorLoss(N_CLASSES, DIM, **params).double()
    loss.reset_parameters(torch.Generator().manual_seed(seed))
    return loss


def ref_proxy_anchor(x, labels, proxies, margin, alpha):
    s = cosines(x, proxies)  # (samples, classes)
    labels = labels.tolist()
    present = sorted(set(labels))
    pos = sum(
        log1p_sum_exp([-alpha * (s[i][c] - margin) for i in range(len(s)) if labels[i] == c])
        for c in present
    )
    neg = sum(
        log1p_sum_exp([alpha * (s[i][c] + margin) for i in range(len(s)) if labels[i] != c])
        for c in range(len(proxies))
    )
    return pos / len(present) + neg / len(proxies)


PA_PARAMS = [{}, {"margin": 0.0, "alpha": 8.0}, {"margin": 0.5, "alpha": 64.0}]


@pytest.mark.parametrize("layout", list(CLASS_LAYOUTS))
@pytest.mark.parametrize("params", PA_PARAMS, ids=repr)
def test_proxy_anchor_matches_reference(layout, params):
    x, labels = class_batch(layout, seed=13)
    loss = make_proxy_anchor(**params)
    want = ref_proxy_anchor(x, labels, loss.proxies.detach(), loss.margin, loss.alpha)
    # (2 alpha)-Lipschitz in the cosines: each proxy's soft-max weights sum to at most 1,
    # times alpha, and both sums are means over proxies
    tol = 4 * loss.alpha * cosine_error(U64)
    assert loss(x, labels).item() == pytest.approx(want, rel=8 * U64, abs=tol)


@pytest.mark.parametrize("layout", ["four_per_class", "two_present"])
def test_proxy_anchor_gradcheck_embeddings_and_proxies(layout):
    x, labels = class_batch(layout, seed=14)
    loss = make_proxy_anchor(alpha=4.0)  # finite differences of exp(32 s) are inaccurate
    proxies = loss.proxies.detach().clone().requires_grad_()

    def f(x, proxies):
        return functional_call(loss, {"proxies": proxies}, (x, labels))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(), proxies))


@pytest.mark.parametrize("layout", ["four_per_class", "two_present", "all_distinct"])
@pytest.mark.parametrize("params", PA_PARAMS, ids=repr)
def test_proxy_anchor_matches_pml(layout, params):
    x, labels = class_batch(layout, seed=15)
    ours = make_proxy_anchor(**params)
    theirs = pml_losses.ProxyAnchorLoss(N_CLASSES, DIM, margin=ours.margin, alpha=ours.alpha)
    theirs.proxies.data = ours.proxies.detach().clone()
    x = x.requires_grad_()
    got, expected = ours(x, labels), theirs(x, labels)
    grads = torch.autograd.grad(got, (x, ours.proxies))
    expected_grads = torch.autograd.grad(expected, (x, theirs.proxies))
    tol = 4 * ours.alpha * cosine_error(U64)
    torch.testing.assert_close(got, expected, rtol=8 * U64, atol=tol)
    # the same operations in the same order: the gradients agree to rounding of the same
    # size, amplified by alpha through the soft-max weights
    for g, e in zip(grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=0, atol=ours.alpha * len(labels) * tol)


def test_proxy_anchor_float32_is_within_rounding_of_float64():
    x, labels = class_batch("four_per_class", seed=16)
    loss64 = make_proxy_anchor()
    loss32 = ProxyAnchorLoss(N_CLASSES, DIM)
    loss32.load_state_dict({k: v.float() for k, v in loss64.state_dict().items()})
    exact = loss64(x, labels).item()
    # x and the proxies rounded to float32 move each cosine by <= 4 sqrt(DIM) u relatively;
    # (2 alpha)-Lipschitz; each of the 2 C log-sum-exps (at most alpha (1 + margin) + log n)
    # rounds by gamma(n + 2), and their sums by gamma(C)
    n, alpha = len(labels), loss64.alpha
    shift = 4 * math.sqrt(DIM) * U32 + cosine_error(U32)
    terms = 2 * (alpha * 1.1 + math.log(n + 1))
    bound = 2 * alpha * shift + (gamma(n + 2) + gamma(N_CLASSES)) * terms + U32 * exact
    assert abs(loss32(x.float(), labels).item() - exact) <= bound


def test_proxy_anchor_absent_classes_only_push():
    x, labels = class_batch("two_present", seed=17)
    loss = make_proxy_anchor()
    loss(x, labels).backward()
    # every proxy is pushed from the batch's negatives, present or not
    assert (loss.proxies.grad.abs().sum(dim=1) > 0).all()


def test_proxy_anchor_parameters_reset_and_train():
    a, b = ProxyAnchorLoss(N_CLASSES, DIM), ProxyAnchorLoss(N_CLASSES, DIM)
    a.reset_parameters(torch.Generator().manual_seed(0))
    torch.manual_seed(123)  # global state must not matter
    b.reset_parameters(torch.Generator().manual_seed(0))
    assert torch.equal(a.proxies, b.proxies)
    assert [name for name, _ in a.named_parameters()] == ["proxies"]
    before = a.proxies.detach().clone()
    optimizer = torch.optim.SGD(a.parameters(), lr=0.1)
    a(torch.randn(12, DIM), torch.arange(12) % N_CLASSES).backward()
    optimizer.step()
    assert not torch.equal(before, a.proxies)


def test_proxy_anchor_empty_batch_and_repr():
    loss = ProxyAnchorLoss(3, 4)
    value = loss(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long))
    value.backward()
    assert value.item() == 0.0
    assert repr(loss) == "ProxyAnchorLoss(n_classes=3, n_components=4, margin=0.1, alpha=32.0)"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"margin": 1.0}, r"`margin` is in cosine units and must be in \[0, 1\), got 1\.0"),
        ({"margin": -0.1}, r"`margin` .* must be in \[0, 1\), got -0\.1"),
        ({"alpha": 0}, r"`alpha` must be in the range \(0\.0, inf\), got 0\.0"),
        ({"alpha": "32"}, r"`alpha` must be a real number, got '32'"),
    ],
)
def test_proxy_anchor_invalid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        ProxyAnchorLoss(N_CLASSES, DIM, **params)


def test_proxy_anchor_invalid_inputs():
    loss = ProxyAnchorLoss(N_CLASSES, DIM)
    with pytest.raises(ValueError, match=r"`n_classes` must be in the range \[2, inf\], got 1"):
        ProxyAnchorLoss(1, DIM)
    with pytest.raises(ValueError, match=r"`n_classes` must be an integer, got 3\.0"):
        ProxyAnchorLoss(3.0, DIM)
    with pytest.raises(ValueError, match=r"`embeddings` must have `n_components`=5 columns"):
        loss(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"`labels` must be in 0\.\.5 \(`n_classes`=6\), got"):
        loss(torch.randn(4, DIM), torch.tensor([0, 1, 2, 6]))


# ---------------------------------------------------------------- sub-centre ArcFace


def make_sub_center(seed=0, **params):
    loss = SubCenterArcFaceLoss(N_CLASSES, DIM, **params).double()
    loss.reset_parameters(torch.Generator().manual_seed(seed))
    return loss


def ref_sub_center_arcface(x, labels, weight, n_classes, margin, scale):
    """One sample at a time: the class cosine is the largest over its sub-centres."""
    s = cosines(x, weight)
    k = len(weight) // n_classes
    total = 0.0
    for i, y in enumerate(labels.tolist()):
        cos = [max(s[i][j * k : (j + 1) * k]) for j in range(n_classes)]
        theta = math.acos(max(-1.0, min(1.0, cos[y])))
        logits = [scale * c for c in cos]
        if theta + margin < math.pi:
            logits[y] = scale * math.cos(theta + margin)
        else:
            logits[y] = scale * (cos[y] - margin * math.sin(margin))
        top = max(logits)
        total += top + math.log(sum(math.exp(z - top) for z in logits)) - logits[y]
    return total / len(labels)


SC_PARAMS = [{}, {"sub_centers": 1}, {"sub_centers": 5, "margin": 0.3, "scale": 16.0}]


@pytest.mark.parametrize("layout", list(CLASS_LAYOUTS))
@pytest.mark.parametrize("params", SC_PARAMS, ids=repr)
def test_sub_center_arcface_matches_reference(layout, params):
    x, labels = class_batch(layout, seed=18)
    loss = make_sub_center(**params)
    want = ref_sub_center_arcface(
        x, labels, loss.weight.detach(), N_CLASSES, loss.margin, loss.scale
    )
    assert loss(x, labels).item() == pytest.approx(want, rel=1e-9, abs=1e-9)


def test_sub_center_arcface_beyond_pi_uses_the_fallback():
    x, labels = class_batch("four_per_class", seed=19)
    loss = make_sub_center(sub_centers=2)
    # class 0's samples near the opposite of both its sub-centres: theta_y + margin > pi
    weight = loss.weight.detach().view(N_CLASSES, 2, DIM)
    weight[0] = torch.randn(DIM, generator=torch.Generator().manual_seed(0), dtype=x.dtype)
    x[labels == 0] = -2 * weight[0, 0] + 0.05 * x[labels == 0]
    target = loss.sub_center_cosines(x).amax(dim=2).gather(1, labels[:, None])
    assert (torch.acos(target[labels == 0]) + loss.margin > math.pi).all()
    want = ref_sub_center_arcface(
        x, labels, loss.weight.detach(), N_CLASSES, loss.margin, loss.scale
    )
    assert loss(x, labels).item() == pytest.approx(want, rel=1e-9)


def test_sub_center_arcface_with_one_sub_center_is_arcface():
    x, labels = class_batch("four_per_class", seed=20)
    ours = make_sub_center(sub_centers=1)
    arcface = ArcFaceLoss(N_CLASSES, DIM).double()
    arcface.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x, labels), arcface(x, labels))
    torch.testing.assert_close(ours.logits(x), arcface.logits(x))


@pytest.mark.parametrize("params", SC_PARAMS, ids=repr)
def test_sub_center_arcface_gradcheck(params):
    x, labels = class_batch("four_per_class", seed=21)
    loss = make_sub_center(**{**params, "scale": 4.0})  # accurate finite differences
    weight = loss.weight.detach().clone().requires_grad_()

    def f(x, weight):
        return functional_call(loss, {"weight": weight}, (x, labels))

    assert torch.autograd.gradcheck(f, (x.requires_grad_(), weight))


@pytest.mark.parametrize("layout", ["four_per_class", "two_present"])
@pytest.mark.parametrize("sub_centers", [1, 3])
def test_sub_center_arcface_matches_pml(layout, sub_centers):
    x, labels = class_batch(layout, seed=22)
    ours = make_sub_center(sub_centers=sub_centers)
    # pml has no fallback beyond theta + margin = pi: stay inside
    target = ours.sub_center_cosines(x).amax(dim=2).gather(1, labels[:, None])
    assert (torch.acos(target) + ours.margin < math.pi - 0.1).all()
    theirs = pml_losses.SubCenterArcFaceLoss(
        num_classes=N_CLASSES,
        embedding_size=DIM,
        margin=math.degrees(ours.margin),
        scale=ours.scale,
        sub_centers=sub_centers,
    )
    theirs.W.data = ours.weight.detach().T.clone()  # pml stores (embedding_size, C * K)
    x = x.requires_grad_()
    got, expected = ours(x, labels), theirs(x, labels)
    grads = torch.autograd.grad(got, (x, ours.weight))
    expected_grads = torch.autograd.grad(expected, (x, theirs.W))
    # pml takes acos and cos, not sqrt(1 - cos^2): a target logit moves by up to
    # scale (1 + |cot theta|) times a cosine's error, at |cos| <= 0.99 at most 8 scale
    tol = 2 * 8 * ours.scale * cosine_error(U64)
    torch.testing.assert_close(got, expected, rtol=8 * U64, atol=tol)
    torch.testing.assert_close(grads[0], expected_grads[0], rtol=0, atol=ours.scale * tol)
    torch.testing.assert_close(grads[1], expected_grads[1].T, rtol=0, atol=ours.scale * tol)


def test_sub_center_arcface_float32_is_within_rounding_of_float64():
    x, labels = class_batch("four_per_class", seed=23)
    loss64 = make_sub_center()
    loss32 = SubCenterArcFaceLoss(N_CLASSES, DIM)
    loss32.load_state_dict({k: v.float() for k, v in loss64.state_dict().items()})
    cos = loss64.sub_center_cosines(x).amax(dim=2)
    # x and w rounded to float32 and the float32 cosine: each within `shift` of exact; a
    # logit moves by scale (1 + |cot theta|) times that (the target's slope, the largest),
    # cross-entropy by at most twice the largest logit change
    shift = 4 * math.sqrt(DIM) * U32 + cosine_error(U32)
    slope = loss64.scale * (1 + (cos / (1 - cos**2).sqrt()).abs().max().item())
    exact = loss64(x, labels).item()
    bound = 2 * slope * shift + gamma(N_CLASSES + 2) * 2 * loss64.scale + U32 * exact
    assert abs(loss32(x.float(), labels).item() - exact) <= bound


def test_sub_center_arcface_parameters():
    loss = SubCenterArcFaceLoss(N_CLASSES, DIM, sub_centers=4)
    assert loss.weight.shape == (4 * N_CLASSES, DIM)
    assert [name for name, _ in loss.named_parameters()] == ["weight"]
    a, b = SubCenterArcFaceLoss(3, 4), SubCenterArcFaceLoss(3, 4)
    a.reset_parameters(torch.Generator().manual_seed(0))
    torch.manual_seed(5)
    b.reset_parameters(torch.Generator().manual_seed(0))
    assert torch.equal(a.weight, b.weight)
    text = repr(a)
    assert (
        text == "SubCenterArcFaceLoss(n_classes=3, n_components=4, margin=0.5, scale=64.0, "
        "sub_centers=3)"
    )


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"sub_centers": 0}, r"`sub_centers` must be in the range \[1, inf\], got 0"),
        ({"sub_centers": 3.0}, r"`sub_centers` must be an integer, got 3\.0 of type float"),
        ({"margin": 28.6}, r"`margin` is an angle in radians .* got 28\.6"),
        ({"scale": 0}, r"`scale` must be in the range \(0\.0, inf\), got 0"),
    ],
)
def test_sub_center_arcface_invalid_parameters(params, match):
    with pytest.raises(ValueError, match=match):
        SubCenterArcFaceLoss(N_CLASSES, DIM, **params)
