"""Tuple losses against loop-over-samples references, gradcheck and pytorch-metric-learning."""

import math

import pytest
import torch
import torch.nn.functional as F
from _rounding import U32
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import losses as pml_losses
from pytorch_metric_learning import miners as pml_miners

from sk_deepmetric import _blocks, _mining
from sk_deepmetric.losses._pair import AngularLoss, ContrastiveLoss, NPairsLoss, TripletMarginLoss

LAYOUTS = ["4_per_class", "2_per_class", "2_large", "distinct", "single", "negative_noncontiguous"]
TRIPLET_MINERS = ["semihard", "batch_hard", "all", "hard", "easy", None]


def make_batch(layout, seed=0, n_components=4, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    if layout == "4_per_class":
        labels = torch.arange(5).repeat_interleave(4)
    elif layout == "2_per_class":  # the N-pair batches of Sohn's paper
        labels = torch.arange(6).repeat_interleave(2)
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
    x = torch.randn(labels.shape[0], n_components, generator=gen, dtype=dtype)
    return x, labels


# ---------------------------------------------------------------- references (plain loops)


def ref_distance(u, v, distance):
    if distance == "dot":
        return -sum(a * b for a, b in zip(u, v))  # minus a similarity
    if distance == "cosine":
        dot = sum(a * b for a, b in zip(u, v))
        return 1.0 - dot / (math.hypot(*u) * math.hypot(*v))
    sq = sum((a - b) ** 2 for a, b in zip(u, v))
    return sq if distance == "squared_euclidean" else math.sqrt(sq)


def ref_matrix(x, distance="euclidean"):
    rows = x.tolist()
    return [[ref_distance(u, v, distance) for v in rows] for u in rows]


def pos_neg(labels, a):
    labels = labels.tolist()
    pos = [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]
    neg = [j for j in range(len(labels)) if labels[j] != labels[a]]
    return pos, neg


def mean_nonzero(values):
    values = [v for v in values if v > 0]
    return sum(values) / len(values) if values else 0.0


def ref_contrastive(x, labels, pos_margin, neg_margin, distance, n_anchors=None):
    """The anchors are the first ``n_anchors`` rows (default: all); the rest are references."""
    d = ref_matrix(x, distance)
    pos, neg = [], []
    for i in range(len(d) if n_anchors is None else n_anchors):
        for j in range(len(d)):
            if i != j and labels[i] == labels[j]:
                pos.append(max(0.0, d[i][j] - pos_margin))
            elif labels[i] != labels[j]:
                neg.append(max(0.0, neg_margin - d[i][j]))
    return mean_nonzero(pos) + mean_nonzero(neg)


def ref_triplets(d, labels, miner, margin, n_anchors=None):
    out = []
    for a in range(len(d) if n_anchors is None else n_anchors):
        pos, neg = pos_neg(labels, a)
        if miner == "batch_hard":
            if pos and neg:
                p = max(pos, key=lambda j: d[a][j])
                out.append((a, p, min(neg, key=lambda j: d[a][j])))
            continue
        for p in pos:
            if miner == "semihard":
                farther = [n for n in neg if d[a][n] > d[a][p]]
                if farther:
                    out.append((a, p, min(farther, key=lambda j: d[a][j])))
                elif neg:
                    out.append((a, p, max(neg, key=lambda j: d[a][j])))
                continue
            for n in neg:
                ap, an = d[a][p], d[a][n]
                keep = {
                    "all": ap - an + margin > 0,
                    "hard": an <= ap,  # ties included, as pml (loss = margin)
                    "easy": an - ap > margin,
                    None: True,
                }[miner]
                if keep:
                    out.append((a, p, n))
    return out


def softplus(v):
    return v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v))


def ref_triplet_loss(x, labels, margin, miner, distance, smooth, n_anchors=None):
    d = ref_matrix(x, distance)
    losses = []
    for a, p, n in ref_triplets(d, labels, miner, margin, n_anchors):
        v = d[a][p] - d[a][n] + margin
        losses.append(softplus(v) if smooth else max(0.0, v))
    return mean_nonzero(losses)


def ref_npairs(x, labels, l2_reg, distance):
    # each class's samples paired in batch order: 1st with 2nd, 3rd with 4th, ...
    rows, waiting, pairs = x.tolist(), {}, []
    for i, y in enumerate(labels.tolist()):
        if y in waiting:
            pairs.append((y, rows[waiting.pop(y)], rows[i]))
        else:
            waiting[y] = i
    if len({y for y, _, _ in pairs}) < 2:
        return 0.0
    total = 0.0
    for y, anchor, positive in pairs:
        dp = ref_distance(anchor, positive, distance)
        inner = sum(
            math.exp(dp - ref_distance(anchor, other, distance)) for z, _, other in pairs if z != y
        )
        total += math.log(1.0 + inner)
    n = len(pairs)
    reg = sum(sum(v * v for v in a) + sum(v * v for v in p) for _, a, p in pairs) / n
    return total / n + 0.25 * l2_reg * reg


def ref_angular(x, labels, alpha):
    unit = [[v / math.hypot(*row) for v in row] for row in x.tolist()]
    tan_sq = math.tan(math.radians(alpha)) ** 2
    losses = []
    for a in range(len(unit)):
        pos, neg = pos_neg(labels, a)
        for p in pos:
            inner = 0.0
            for n in neg:
                f = (
                    4
                    * tan_sq
                    * sum((ua + up) * un for ua, up, un in zip(unit[a], unit[p], unit[n]))
                )
                f -= 2 * (1 + tan_sq) * sum(ua * up for ua, up in zip(unit[a], unit[p]))
                inner += math.exp(f)
            losses.append(math.log(1.0 + inner))
    any_negative = len(set(labels.tolist())) > 1
    return sum(losses) / len(losses) if losses and any_negative else 0.0


# ---------------------------------------------------------------- values against references


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_contrastive_matches_reference(layout, distance):
    x, labels = make_batch(layout)
    loss = ContrastiveLoss(pos_margin=0.3, neg_margin=1.7, distance=distance)(x, labels)
    expected = ref_contrastive(x, labels, 0.3, 1.7, distance)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("miner", TRIPLET_MINERS)
@pytest.mark.parametrize("smooth", [False, True])
def test_triplet_matches_reference(layout, miner, smooth):
    x, labels = make_batch(layout, seed=1)
    loss = TripletMarginLoss(margin=0.4, miner=miner, smooth=smooth)(x, labels)
    expected = ref_triplet_loss(x, labels, 0.4, miner, "euclidean", smooth)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("distance", ["squared_euclidean", "cosine"])
@pytest.mark.parametrize("miner", TRIPLET_MINERS)
def test_triplet_other_distances(distance, miner):
    x, labels = make_batch("4_per_class", seed=2)
    loss = TripletMarginLoss(margin=0.1, miner=miner, distance=distance)(x, labels)
    expected = ref_triplet_loss(x, labels, 0.1, miner, distance, False)
    assert loss.item() == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("distance", ["dot", "euclidean", "squared_euclidean", "cosine"])
def test_npairs_matches_reference(layout, distance):
    x, labels = make_batch(layout, seed=3)
    loss = NPairsLoss(l2_reg=0.01, distance=distance)(x, labels)
    assert loss.item() == pytest.approx(ref_npairs(x, labels, 0.01, distance), abs=1e-6)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("alpha", [30.0, 45.0, 60.0])
def test_angular_matches_reference(layout, alpha):
    x, labels = make_batch(layout, seed=4)
    loss = AngularLoss(alpha=alpha)(x, labels)
    assert loss.item() == pytest.approx(ref_angular(x, labels, alpha), abs=1e-6)


@pytest.fixture(autouse=True)
def sorted_paths_on_every_cpu(monkeypatch):
    """The sorted-keys paths are tested whether or not numpy sorts with SIMD on this CPU (where
    it does not, they are off by default, and ``SORT_KEYS=False`` tests the default)."""
    monkeypatch.setattr(_mining, "SORT_KEYS", True)


# one anchor per block (and per search block); every negative placed by search or by comparisons;
# masked minima or bins for semi-hard; a grid of one cell per value; gradients from dense blocks
# only or from gathered entries only
BLOCK_SETTINGS = [
    (_blocks, "BLOCK_BYTES", 1),
    (_blocks, "CHUNK_BYTES", 1),
    (_mining, "MAX_COMPARED", 0),
    (_mining, "MAX_COMPARED", 100),
    (_mining, "MAX_MASKED", 0),
    (_mining, "MAX_MASKED", 100),
    (_mining, "CELLS_PER_VALUE", 1),
    (_mining, "SEARCH_ROWS", 1),
    (_mining, "SORT_KEYS", False),
    (_mining, "MAX_MASKED_PER_THREAD", 0),
    (_mining, "MAX_COMPARED_PER_THREAD", 0),
    (_mining, "SORT_BYTES", 1),
    (_blocks, "DENSE_COLUMNS", 0),
    (_blocks, "DENSE_COLUMNS", 10**9),
]


def values_and_grads(losses, x, labels):
    out = []
    for loss in losses:
        xg = x.clone().requires_grad_(True)
        value = loss(xg, labels)
        value.backward()
        out.append((value.detach(), xg.grad))
    return out


@pytest.mark.parametrize(("module", "setting", "value"), BLOCK_SETTINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_and_search_methods_agree(monkeypatch, module, setting, value, dtype):
    x, labels = make_batch("2_large", seed=5, dtype=dtype)
    losses = [
        TripletMarginLoss(miner="all"),
        TripletMarginLoss(miner="hard"),
        TripletMarginLoss(miner="semihard"),
        TripletMarginLoss(miner="batch_hard", distance="cosine"),
        TripletMarginLoss(miner=None, smooth=True),
        ContrastiveLoss(pos_margin=0.1, neg_margin=3.0),
        AngularLoss(),
    ]
    whole = values_and_grads(losses, x, labels)
    monkeypatch.setattr(module, setting, value)
    for (v1, g1), (v2, g2) in zip(whole, values_and_grads(losses, x, labels)):
        torch.testing.assert_close(v1, v2)
        torch.testing.assert_close(g1, g2)


def integer_batch(seed=0, n=40, dtype=torch.float64):
    """Embeddings of small integers: squared distances, hinge values and gradients are exact
    (integers below 2**24, or one division by a count), whatever the order of the sums."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, 3), generator=gen).to(dtype)
    return x, torch.randint(0, 4, (n,), generator=gen)


EXACT_LOSSES = [
    *(
        TripletMarginLoss(margin=1.0, miner=m, distance="squared_euclidean")
        for m in ["semihard", "batch_hard", "all", "hard", "easy"]
    ),
    ContrastiveLoss(pos_margin=1.0, neg_margin=6.0, distance="squared_euclidean"),
]


@pytest.mark.parametrize(("module", "setting", "value"), BLOCK_SETTINGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_and_search_methods_agree_bit_for_bit(monkeypatch, module, setting, value, dtype):
    # where the arithmetic is exact, the blocks, searches and gradient paths change nothing
    x, labels = integer_batch(dtype=dtype)
    whole = values_and_grads(EXACT_LOSSES, x, labels)
    monkeypatch.setattr(module, setting, value)
    for (v1, g1), (v2, g2) in zip(whole, values_and_grads(EXACT_LOSSES, x, labels)):
        assert torch.equal(v1, v2) and torch.equal(g1, g2)


@pytest.mark.parametrize("miner", TRIPLET_MINERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_triplet_with_tied_distances_matches_reference(miner, dtype):
    x, labels = integer_batch(seed=1, dtype=dtype)
    loss = TripletMarginLoss(margin=1.0, miner=miner, distance="squared_euclidean")(x, labels)
    expected = ref_triplet_loss(x.double(), labels, 1.0, miner, "squared_euclidean", False)
    # exact sums of integers and one division (float64 throughout for the counted losses),
    # then one rounding to the embeddings' dtype
    assert loss.item() == pytest.approx(expected, rel=U32 if dtype == torch.float32 else 1e-15)


# ---------------------------------------------------------------- gradients


def grad_batch(n_per_class=3, n_classes=3, seed=7):
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n_classes).repeat_interleave(n_per_class)
    x = torch.randn(labels.shape[0], 3, generator=gen, dtype=torch.float64)
    return x.requires_grad_(True), labels


@pytest.mark.parametrize("miner", TRIPLET_MINERS)
@pytest.mark.parametrize("smooth", [False, True])
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_triplet_gradcheck(miner, smooth, distance):
    x, labels = grad_batch()
    loss = TripletMarginLoss(margin=0.3, miner=miner, distance=distance, smooth=smooth)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x,))


@pytest.mark.parametrize(
    "loss",
    [
        ContrastiveLoss(pos_margin=0.2, neg_margin=2.0),
        ContrastiveLoss(neg_margin=0.5, distance="cosine"),
        ContrastiveLoss(pos_margin=0.5, neg_margin=8.0, distance="squared_euclidean"),
        NPairsLoss(),
        NPairsLoss(distance="euclidean"),
        NPairsLoss(distance="cosine", l2_reg=0.0),
        AngularLoss(),
        AngularLoss(alpha=70.0),
    ],
    ids=repr,
)
def test_gradcheck(loss):
    x, labels = grad_batch()
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x,))


@pytest.mark.parametrize("distance", ["dot", "euclidean", "cosine"])
def test_npairs_gradcheck_with_several_pairs_per_class(distance):
    # 5 per class: two pairs each (the other pair of one's class is masked) and an odd one out
    x, labels = grad_batch(n_per_class=5)
    loss = NPairsLoss(distance=distance)
    assert torch.autograd.gradcheck(lambda e: loss(e, labels), (x,))


@pytest.mark.parametrize(
    "loss",
    [
        ContrastiveLoss(),
        TripletMarginLoss(miner="all"),
        TripletMarginLoss(miner="semihard"),
        TripletMarginLoss(miner=None, smooth=True),
        NPairsLoss(),
        AngularLoss(),
    ],
    ids=repr,
)
@pytest.mark.parametrize("layout", ["distinct", "single"])
def test_empty_batch_gives_zero_with_finite_gradient(loss, layout):
    x, labels = make_batch(layout)
    if isinstance(loss, ContrastiveLoss):
        # no active pair: duplicated points of one class, or classes far apart
        x = torch.zeros_like(x) if layout == "single" else 10.0 * x.sort(dim=0).values
    x.requires_grad_(True)
    value = loss(x, labels)
    value.backward()
    assert value.item() == 0.0
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()


# ---------------------------------------------------------------- pytorch-metric-learning


def pml_euclidean():
    return pml_distances.LpDistance(normalize_embeddings=False)


def value_and_grad(loss, x, labels, *args):
    x = x.clone().requires_grad_(True)
    value = loss(x, labels, *args)
    value.backward()
    return value.detach(), x.grad


@pytest.mark.parametrize("layout", ["4_per_class", "2_large", "negative_noncontiguous"])
@pytest.mark.parametrize("kind", ["all", "hard", "easy", "batch_hard"])
@pytest.mark.parametrize("smooth", [False, True])
def test_triplet_matches_pml(layout, kind, smooth):
    x, labels = make_batch(layout, seed=8)
    if kind == "batch_hard":
        pml_miner = pml_miners.BatchHardMiner(distance=pml_euclidean())
    else:
        pml_miner = pml_miners.TripletMarginMiner(0.3, kind, distance=pml_euclidean())
    pml = pml_losses.TripletMarginLoss(margin=0.3, smooth_loss=smooth, distance=pml_euclidean())
    expected = value_and_grad(lambda e, y: pml(e, y, pml_miner(e, y)), x, labels)
    got = value_and_grad(TripletMarginLoss(0.3, miner=kind, smooth=smooth), x, labels)
    torch.testing.assert_close(got, expected)


def test_triplet_with_pml_semihard_triplets_matches_pml():
    x, labels = make_batch("4_per_class", seed=9)
    pml_miner = pml_miners.TripletMarginMiner(0.5, "semihard", distance=pml_euclidean())
    pml = pml_losses.TripletMarginLoss(margin=0.5, distance=pml_euclidean())
    expected = value_and_grad(lambda e, y: pml(e, y, pml_miner(e, y)), x, labels)
    got = value_and_grad(TripletMarginLoss(0.5, miner=pml_miner), x, labels)
    torch.testing.assert_close(got, expected)


def test_triplet_cosine_matches_pml_cosine_similarity():
    x, labels = make_batch("2_large", seed=10)
    pml = pml_losses.TripletMarginLoss(margin=0.1, distance=pml_distances.CosineSimilarity())
    expected = value_and_grad(pml, x, labels)
    got = value_and_grad(TripletMarginLoss(0.1, miner=None, distance="cosine"), x, labels)
    torch.testing.assert_close(got, expected)


def _assert_no_triplet_within_rounding_of_the_hinge(x, labels, margin):
    """Every ``d_ap - d_an + margin`` is farther from 0 than float32 rounding can move it.

    Each distance is a correctly rounded square root (``u d``) and the two additions round by
    at most ``u`` of ``d_ap + d_an + margin`` each: ``4 u (d_ap + d_an + margin)`` bounds the
    error of either implementation's value with room to spare.
    """
    d = torch.cdist(x, x)
    for a in range(len(x)):
        pos = (labels == labels[a]) & (torch.arange(len(x)) != a)
        d_ap, d_an = d[a, pos][:, None], d[a, labels != labels[a]][None, :]
        v = d_ap - d_an + margin
        assert (v.abs() > 4 * U32 * (d_ap + d_an + margin)).all()


def test_batch_all_float32_large_batch_matches_pml():
    gen = torch.Generator().manual_seed(11)
    labels = torch.randint(0, 10, (200,), generator=gen)
    # integer coordinates: |x|^2 + |y|^2 - 2 x.y is exact in float32 (integers below 2^24),
    # so both start from the same correctly rounded square roots, and which of the 690k
    # triplets are active cannot depend on the CPU (on torch.randn data 10 of them lie
    # within float32 rounding of the hinge, each worth a jump of ~5e-6 in the gradient)
    x = torch.randint(-3, 4, (200, 16), generator=gen).float()
    _assert_no_triplet_within_rounding_of_the_hinge(x.double(), labels, 0.2)
    pml = pml_losses.TripletMarginLoss(margin=0.2, distance=pml_euclidean())
    expected = value_and_grad(pml, x, labels)
    got = value_and_grad(TripletMarginLoss(0.2, miner="all"), x, labels)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("layout", ["4_per_class", "2_large", "negative_noncontiguous"])
def test_contrastive_matches_pml(layout):
    x, labels = make_batch(layout, seed=12)
    pml = pml_losses.ContrastiveLoss(pos_margin=0.2, neg_margin=2.5, distance=pml_euclidean())
    expected = value_and_grad(pml, x, labels)
    got = value_and_grad(ContrastiveLoss(pos_margin=0.2, neg_margin=2.5), x, labels)
    torch.testing.assert_close(got, expected)


def test_contrastive_cosine_is_pml_cosine_similarity_with_margins_flipped():
    x, labels = make_batch("4_per_class", seed=13)
    pml_dist = pml_distances.CosineSimilarity()
    pml = pml_losses.ContrastiveLoss(pos_margin=0.9, neg_margin=0.3, distance=pml_dist)
    expected = value_and_grad(pml, x, labels)
    ours = ContrastiveLoss(pos_margin=0.1, neg_margin=0.7, distance="cosine")
    torch.testing.assert_close(value_and_grad(ours, x, labels), expected)


@pytest.mark.parametrize(
    ("distance", "pml_distance"),
    [
        ("cosine", pml_distances.CosineSimilarity()),
        ("dot", pml_distances.DotProductSimilarity(normalize_embeddings=False)),
        ("euclidean", pml_distances.LpDistance(normalize_embeddings=False)),
    ],
    ids=["cosine", "dot", "euclidean"],
)
def test_npairs_matches_pml_on_two_samples_per_class(distance, pml_distance):
    x, labels = make_batch("2_per_class", seed=14)
    expected = value_and_grad(pml_losses.NPairsLoss(distance=pml_distance), x, labels)
    got = value_and_grad(NPairsLoss(l2_reg=0.0, distance=distance), x, labels)
    torch.testing.assert_close(got, expected)


def test_npairs_uses_every_pair_where_pml_keeps_the_first_two_of_a_class():
    x, labels = make_batch("4_per_class", seed=14)
    ours = NPairsLoss(l2_reg=0.0, distance="cosine")
    pml = pml_losses.NPairsLoss(distance=pml_distances.CosineSimilarity())
    # pml's value is ours on the batch cut down to each class's first two samples
    first_two = torch.tensor([(labels[:i] == labels[i]).sum() < 2 for i in range(labels.numel())])
    torch.testing.assert_close(ours(x[first_two], labels[first_two]), pml(x, labels))
    x.requires_grad_(True)
    ours(x, labels).backward()
    assert (x.grad.abs().sum(dim=1) > 0).all()  # every sample is in a pair and gets a gradient


@pytest.mark.parametrize("layout", ["4_per_class", "2_large", "negative_noncontiguous"])
def test_angular_matches_pml_on_unit_vectors(layout):
    # pml leaves the negatives unnormalised; on unit vectors the two agree
    x, labels = make_batch(layout, seed=15)
    x = F.normalize(x, dim=1)
    expected = pml_losses.AngularLoss(alpha=40)(x, labels)
    torch.testing.assert_close(AngularLoss(alpha=40.0)(x, labels), expected)


# ---------------------------------------------------------------- parameter errors


def test_negative_margins_are_errors():
    with pytest.raises(ValueError, match=r"`margin` must be in the range \[0.0, inf\], got -0.2"):
        TripletMarginLoss(margin=-0.2)
    with pytest.raises(ValueError, match=r"`neg_margin` must be in the range \[0.0, inf\]"):
        ContrastiveLoss(neg_margin=-1.0)
    with pytest.raises(ValueError, match=r"`pos_margin` must be a real number, got '0'"):
        ContrastiveLoss(pos_margin="0")
    with pytest.raises(ValueError, match=r"`l2_reg` must be in the range \[0.0, inf\]"):
        NPairsLoss(l2_reg=-0.1)


def test_unknown_miner_suggests_the_closest():
    with pytest.raises(ValueError, match=r"`miner` must be one of .* Did you mean 'semihard'\?"):
        TripletMarginLoss(miner="semi_hard")
    with pytest.raises(ValueError, match="Did you mean 'batch_hard'"):
        TripletMarginLoss(miner="batchhard")


def test_unknown_distance_suggests_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'euclidean'"):
        NPairsLoss(distance="euclidian")
    with pytest.raises(ValueError, match="Did you mean 'cosine'"):
        ContrastiveLoss(distance="cosin")


@pytest.mark.parametrize("alpha", [0, 0.0, 90, 90.0, -10.0, 135.0])
def test_alpha_outside_open_interval(alpha):
    with pytest.raises(ValueError, match=r"`alpha` must be in the range \(0.0, 90.0\)"):
        AngularLoss(alpha=alpha)


def test_smooth_must_be_bool():
    with pytest.raises(ValueError, match="`smooth` must be a bool"):
        TripletMarginLoss(smooth="yes")


@pytest.mark.parametrize(
    "loss", [ContrastiveLoss(), TripletMarginLoss(), NPairsLoss(), AngularLoss()], ids=repr
)
def test_bad_embeddings_shape(loss):
    with pytest.raises(ValueError, match=r"`embeddings` must be a 2-D tensor .* got \(4,\)"):
        loss(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="`labels` must be an integer tensor"):
        loss(torch.zeros(4, 2), torch.zeros(4))


@pytest.mark.parametrize(
    ("mined", "match"),
    [
        (None, "got NoneType"),
        ((torch.tensor([0]), torch.tensor([1])), r"got tuple of Tensor\(1,\)"),
        ((torch.tensor([0.0]), torch.tensor([1]), torch.tensor([2])), "torch.float32"),
        ((torch.tensor([0, 1]), torch.tensor([1]), torch.tensor([2])), "of one length"),
        ((torch.tensor([0]), torch.tensor([1]), torch.tensor([9])), "outside the batch of 4"),
        ((torch.tensor([-1]), torch.tensor([1]), torch.tensor([2])), "outside the batch of 4"),
    ],
)
def test_a_callable_miner_that_returns_no_triplets_is_named(mined, match):
    loss = TripletMarginLoss(miner=lambda embeddings, labels: mined)
    with pytest.raises(ValueError, match=match):
        loss(torch.randn(4, 3), torch.tensor([0, 0, 1, 1]))
