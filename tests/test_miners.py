"""Miners against loop-over-samples references and pytorch-metric-learning."""

import math

import pytest
import torch
from pytorch_metric_learning import distances as pml_distances
from pytorch_metric_learning import miners as pml_miners

from sk_deepmetric import _blocks, _mining
from sk_deepmetric.miners import (
    BatchHardMiner,
    SemiHardMiner,
    TripletMarginMiner,
    batch_hard_triplets,
    margin_triplets,
    semihard_triplets,
    triplet_type_mask,
)

LAYOUTS = ["4_per_class", "2_large", "distinct", "single", "negative_noncontiguous"]


def make_batch(layout, seed=0, n_components=5):
    gen = torch.Generator().manual_seed(seed)
    if layout == "4_per_class":
        labels = torch.arange(6).repeat_interleave(4)
    elif layout == "2_large":
        labels = torch.tensor([0] * 11 + [1] * 9)
    elif layout == "distinct":
        labels = torch.arange(12)
    elif layout == "single":
        labels = torch.full((10,), 3)
    else:
        values = torch.tensor([-7, 3, 100, -1])
        labels = values[torch.randint(0, 4, (22,), generator=gen)]
    labels = labels[torch.randperm(labels.shape[0], generator=gen)]
    x = torch.randn(labels.shape[0], n_components, generator=gen, dtype=torch.float64)
    return x, labels


def reference_distance(u, v, distance):
    u, v = u.tolist(), v.tolist()
    if distance == "cosine":
        dot = sum(a * b for a, b in zip(u, v))
        return 1.0 - dot / (math.hypot(*u) * math.hypot(*v))
    sq = sum((a - b) ** 2 for a, b in zip(u, v))
    return sq if distance == "squared_euclidean" else math.sqrt(sq)


def reference_matrix(x, distance="euclidean"):
    n = x.shape[0]
    return [[reference_distance(x[i], x[j], distance) for j in range(n)] for i in range(n)]


def positives_and_negatives(labels, a):
    labels = labels.tolist()
    pos = [j for j in range(len(labels)) if j != a and labels[j] == labels[a]]
    neg = [j for j in range(len(labels)) if labels[j] != labels[a]]
    return pos, neg


def reference_batch_hard(d, labels):
    out = []
    for a in range(len(d)):
        pos, neg = positives_and_negatives(labels, a)
        if pos and neg:
            p = max(pos, key=lambda j: d[a][j])
            n = min(neg, key=lambda j: d[a][j])
            out.append((a, p, n))
    return out


def reference_semihard(d, labels):
    out = []
    for a in range(len(d)):
        pos, neg = positives_and_negatives(labels, a)
        if not neg:
            continue
        for p in pos:
            farther = [n for n in neg if d[a][n] > d[a][p]]
            if farther:
                n = min(farther, key=lambda j: d[a][j])
            else:
                n = max(neg, key=lambda j: d[a][j])
            out.append((a, p, n))
    return out


def reference_margin(d, labels, margin, kind):
    out = []
    for a in range(len(d)):
        pos, neg = positives_and_negatives(labels, a)
        for p in pos:
            for n in neg:
                ap, an = d[a][p], d[a][n]
                keep = {
                    "all": ap - an + margin > 0,
                    "hard": an <= ap,  # ties included, as pml (loss = margin)
                    "semihard": ap < an and ap - an + margin > 0,
                    "easy": an - ap > margin,
                }[kind]
                if keep:
                    out.append((a, p, n))
    return out


def as_list(triplets):
    a, p, n = triplets
    for t in triplets:
        assert t.dtype == torch.int64
    return list(zip(a.tolist(), p.tolist(), n.tolist()))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_batch_hard_matches_reference(layout, distance):
    x, labels = make_batch(layout)
    expected = reference_batch_hard(reference_matrix(x, distance), labels)
    assert as_list(BatchHardMiner(distance=distance)(x, labels)) == expected


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_semihard_matches_reference(layout, distance):
    x, labels = make_batch(layout, seed=1)
    expected = reference_semihard(reference_matrix(x, distance), labels)
    assert as_list(SemiHardMiner(distance=distance)(x, labels)) == expected


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("kind", ["all", "hard", "semihard", "easy"])
def test_triplet_margin_miner_matches_reference(layout, kind):
    x, labels = make_batch(layout, seed=2)
    expected = reference_margin(reference_matrix(x), labels, 0.3, kind)
    got = as_list(TripletMarginMiner(margin=0.3, type_of_triplets=kind)(x, labels))
    assert got == expected


@pytest.mark.parametrize("kind", ["all", "hard", "semihard", "easy"])
def test_triplet_margin_miner_cosine(kind):
    x, labels = make_batch("4_per_class", seed=3)
    expected = reference_margin(reference_matrix(x, "cosine"), labels, 0.1, kind)
    miner = TripletMarginMiner(margin=0.1, type_of_triplets=kind, distance="cosine")
    assert as_list(miner(x, labels)) == expected


@pytest.mark.parametrize("layout", ["4_per_class", "2_large", "negative_noncontiguous"])
@pytest.mark.parametrize("kind", ["all", "hard", "semihard", "easy"])
def test_triplet_margin_miner_matches_pml(layout, kind):
    x, labels = make_batch(layout, seed=4)
    dist = pml_distances.LpDistance(normalize_embeddings=False)
    pml = pml_miners.TripletMarginMiner(margin=0.25, type_of_triplets=kind, distance=dist)
    ours = TripletMarginMiner(margin=0.25, type_of_triplets=kind)
    assert as_list(ours(x, labels)) == as_list(pml(x, labels))


@pytest.mark.parametrize("layout", ["4_per_class", "2_large", "negative_noncontiguous"])
def test_batch_hard_matches_pml(layout):
    x, labels = make_batch(layout, seed=5)
    pml = pml_miners.BatchHardMiner(distance=pml_distances.LpDistance(normalize_embeddings=False))
    assert sorted(as_list(BatchHardMiner()(x, labels))) == sorted(as_list(pml(x, labels)))


@pytest.fixture(autouse=True)
def sorted_paths_on_every_cpu(monkeypatch):
    """The sorted-keys paths are tested whether or not numpy sorts with SIMD on this CPU (where
    it does not, they are off by default, and ``SORT_KEYS=False`` tests the default)."""
    monkeypatch.setattr(_mining, "SORT_KEYS", True)


# one anchor per block (and per search block); every negative placed by search or by comparisons;
# masked minima or bins for semi-hard; a grid of one cell per value (fuller cells); float32 rows
# never, always or one row at a time answered from sorted keys
BLOCK_AND_SEARCH_SETTINGS = [
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
]


@pytest.mark.parametrize(("module", "setting", "value"), BLOCK_AND_SEARCH_SETTINGS)
@pytest.mark.parametrize("layout", ["2_large", "negative_noncontiguous"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_blocks_and_search_methods_agree_bit_for_bit(
    monkeypatch, module, setting, value, layout, dtype
):
    x, labels = make_batch(layout, seed=6)
    dist = torch.cdist(x, x).to(dtype)
    functions = (semihard_triplets, batch_hard_triplets, lambda d, y: margin_triplets(d, y, 0.5))
    whole = [f(dist, labels) for f in functions]
    monkeypatch.setattr(module, setting, value)
    for w, f in zip(whole, functions):
        assert as_list(w) == as_list(f(dist, labels))


def integer_batch(seed=0, n=40, dtype=torch.float64):
    """Embeddings of small integers: exact squared distances, and many ties among them."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randint(-2, 3, (n, 3), generator=gen).to(dtype)
    return x, torch.randint(0, 4, (n,), generator=gen)


@pytest.mark.parametrize(
    ("module", "setting", "value"), [(None, None, None), *BLOCK_AND_SEARCH_SETTINGS]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ties_go_to_the_lowest_index_in_every_block_and_search(
    monkeypatch, module, setting, value, dtype
):
    if module is not None:
        monkeypatch.setattr(module, setting, value)
    x, labels = integer_batch(dtype=dtype)  # exact in float32 too
    d = reference_matrix(x, "squared_euclidean")
    got = BatchHardMiner(distance="squared_euclidean")(x, labels)
    assert as_list(got) == reference_batch_hard(d, labels)
    got = SemiHardMiner(distance="squared_euclidean")(x, labels)
    assert as_list(got) == reference_semihard(d, labels)
    miner = TripletMarginMiner(
        margin=1.0, type_of_triplets="semihard", distance="squared_euclidean"
    )
    assert as_list(miner(x, labels)) == reference_margin(d, labels, 1.0, "semihard")


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize("kind", ["normal", "ties", "constant", "padded", "one_value"])
def test_grid_count_matches_searchsorted(strict, kind):
    gen = torch.Generator().manual_seed(7)
    rows, k = 6, 50
    if kind == "ties":
        values = torch.randint(0, 5, (rows, k), generator=gen).double()
    elif kind == "constant":
        values = torch.full((rows, k), 2.0, dtype=torch.float64)
    else:
        values = torch.randn(rows, k, generator=gen, dtype=torch.float64)
    if kind == "padded":  # shorter classes: -inf first, up to a whole row of them
        values[torch.arange(k) < torch.arange(0, rows * 10, 10)[:, None]] = -torch.inf
    if kind == "one_value":
        values[:, 1:] = -torch.inf
    values = values.sort(dim=1).values
    queries = torch.cat(
        [
            torch.randn(rows, 200, generator=gen, dtype=torch.float64) * 2,
            values[:, torch.randint(0, k, (40,), generator=gen)].clamp_min(0.0),  # equal ones
            torch.full((rows, 3), torch.inf, dtype=torch.float64),
        ],
        dim=1,
    )
    if kind == "ties":
        queries = torch.randint(-1, 6, queries.shape, generator=gen).double()
    want = torch.searchsorted(values, queries, right=not strict)
    assert torch.equal(_mining.count_below_by_grid(values, queries, strict), want)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_masked_minimum_above_matches_where(dtype):
    """The vectorised masked minimum gives ``where(values > bound, values, inf).min(dim=1)``
    bit for bit: ties (lowest index), bounds equal to entries, signed zeros, infinities, NaN
    (never larger) and rows with nothing larger."""
    gen = torch.Generator().manual_seed(3)
    values = torch.randint(0, 6, (7, 300), generator=gen).to(dtype)
    values[0, :50] = torch.nan
    values[1, ::7] = -0.0
    values[2, 10:20] = torch.inf
    values[3, :] = -torch.inf
    values[4] = torch.randn(300, generator=gen, dtype=dtype)
    values[5, :] = torch.nan
    bound = torch.tensor([2.0, -1.0, 5.0, 0.0, 0.25, 1.0, torch.inf], dtype=dtype)[:, None]
    bound[1] = -0.0
    want = torch.where(values > bound, values, torch.inf).min(dim=1)
    got = _mining._masked_min_above(values, bound)
    assert torch.equal(got.indices, want.indices)
    assert torch.equal(got.values, want.values)  # no NaN in either: NaN is never larger
    assert torch.equal(got.values.signbit(), want.values.signbit())


def special_floats(gen, shape, dtype=torch.float32):
    """Small integers (many ties) with signed zeros, infinities, NaN and subnormals mixed in."""
    values = torch.randint(-3, 6, shape, generator=gen).to(dtype)
    specials = torch.tensor(
        [0.0, -0.0, torch.inf, -torch.inf, torch.nan, -torch.nan, 1e-45, -1e-45, 2.5],
        dtype=dtype,
    )
    where = torch.rand(shape, generator=gen) < 0.2
    values[where] = specials[torch.randint(0, len(specials), shape, generator=gen)][where]
    return values


def test_row_keys_order_as_the_values_then_the_low_word():
    gen = torch.Generator().manual_seed(11)
    values = special_floats(gen, (3, 400))
    values[2] = values[2].abs()  # no negative value: the keys' shorter path
    low = torch.randint(-(2**31), 2**31 - 1, (3, 400), generator=gen, dtype=torch.int32)
    keys = _mining.row_keys(values, low)
    for r in range(3):
        v, lo, k = values[r].tolist(), (low[r].long() % 2**32).tolist(), keys[r].tolist()
        for i in range(0, 400, 7):
            for j in range(400):
                if math.isnan(v[i]) or math.isnan(v[j]):
                    continue
                want = (v[i], lo[i]) < (v[j], lo[j])  # -0.0 == 0.0 in Python too
                assert (k[i] < k[j]) == want, (v[i], lo[i], v[j], lo[j])
    # NaN with its sign bit clear sorts above inf, with it set below -inf
    nan_keys = _mining.row_keys(torch.tensor([[torch.nan, -torch.nan, torch.inf, -torch.inf]]), 0)
    assert nan_keys[0, 0] > nan_keys[0, 2] and nan_keys[0, 1] < nan_keys[0, 3]


def test_sorted_nearest_above_matches_where():
    """From sorted keys: the smallest larger entry and its lowest column, as a masked minimum
    per column; inf where nothing is larger (NaN entries are never larger, a NaN bound has
    nothing larger)."""
    gen = torch.Generator().manual_seed(12)
    neg_d = special_floats(gen, (9, 300))
    neg_d[8] = torch.inf  # nothing larger anywhere
    pos_d = special_floats(gen, (9, 40))
    got_d, got = _mining._nearest_above_sorted(neg_d, pos_d)
    for j in range(pos_d.shape[1]):
        masked = torch.where(neg_d > pos_d[:, j : j + 1], neg_d, torch.inf)
        want_d, want = masked.min(dim=1)
        assert torch.equal(got_d[:, j], want_d)
        found = want_d < torch.inf
        assert torch.equal(got[found, j], want[found])
        assert torch.equal(neg_d.gather(1, got[:, j : j + 1])[found, 0], want_d[found])


def reference_active_weights(d, start, labels, shift):
    """Per entry, the triplets with d_an < d_ap + shift it takes part in: + as a positive,
    - as a negative (loops over anchors, positives and negatives)."""
    w = torch.zeros(d.shape, dtype=torch.float64)
    for r in range(d.shape[0]):
        a = start + r
        pos, neg = positives_and_negatives(labels, a)
        for p in pos:
            for q in neg:
                if d[r, q] < d[r, p] + shift:
                    w[r, p] += 1
                    w[r, q] -= 1
    return w


@pytest.mark.parametrize("sort", [False, True])
@pytest.mark.parametrize("shift", [0.0, 0.5, 1.0])
def test_active_triplet_weights_match_loops(monkeypatch, sort, shift):
    gen = torch.Generator().manual_seed(13)
    labels = torch.tensor([0] * 9 + [1] * 7 + [2] * 3 + [3]).repeat(2)
    labels = labels[torch.randperm(labels.shape[0], generator=gen)]
    x = torch.randint(-2, 3, (labels.shape[0], 3), generator=gen).float()
    d = torch.cdist(x, x) ** 2  # integers: many ties
    monkeypatch.setattr(_mining, "MAX_COMPARED_PER_THREAD", 0 if sort else 10**6)
    monkeypatch.setattr(_mining, "SORT_BYTES", 1 if sort else _mining.SORT_BYTES)
    classes = _mining.batch_classes(labels)
    start, stop = 5, 27
    cols, valid = _mining.positive_columns(classes, start, stop)
    got = _mining.active_triplet_weights(d[start:stop].clone(), start, cols, valid, shift)
    want = reference_active_weights(d[start:stop], start, labels, shift)
    assert torch.equal(got.double(), want)


def test_semihard_falls_back_to_farthest_negative():
    # the positive is farther than every negative: the farthest negative is taken
    x = torch.tensor([[0.0], [5.0], [1.0], [2.0]])
    a, p, n = SemiHardMiner()(x, torch.tensor([0, 0, 1, 1]))
    assert (a[0].item(), p[0].item(), n[0].item()) == (0, 1, 3)


@pytest.mark.parametrize(
    "miner",
    [BatchHardMiner(), SemiHardMiner(), TripletMarginMiner(type_of_triplets="hard")],
    ids=repr,
)
@pytest.mark.parametrize("layout", ["distinct", "single"])
def test_no_valid_triplet_gives_empty_int64(miner, layout):
    x, labels = make_batch(layout)
    for t in miner(x.float(), labels):
        assert t.dtype == torch.int64 and t.shape == (0,)


def test_miners_do_not_track_gradients():
    x, labels = make_batch("4_per_class")
    x.requires_grad_(True)
    for t in SemiHardMiner()(x, labels):
        assert not t.requires_grad


def test_margin_validation():
    with pytest.raises(ValueError, match=r"`margin` must be in the range \[0.0, inf\], got -0.1"):
        SemiHardMiner(margin=-0.1)
    with pytest.raises(ValueError, match="`margin` must be a real number"):
        TripletMarginMiner(margin="0.2")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(ValueError, match="Did you mean 'semihard'"):
        TripletMarginMiner(type_of_triplets="semi_hard")
    with pytest.raises(ValueError, match="Did you mean 'euclidean'"):
        BatchHardMiner(distance="euclidian")


def test_bad_inputs():
    with pytest.raises(ValueError, match="`embeddings` must be a 2-D tensor"):
        BatchHardMiner()(torch.zeros(4), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="`labels` must be a 1-D tensor"):
        SemiHardMiner()(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))


def test_repr():
    assert repr(SemiHardMiner()) == "SemiHardMiner(margin=0.2, distance='euclidean')"


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda d, y: margin_triplets(d, y, 0.2, "Hard"), "Did you mean 'hard'"),
        (lambda d, y: margin_triplets(d, y, -0.1), r"`margin` must be in the range \[0.0"),
        (lambda d, y: triplet_type_mask(d, d, 0.2, "medium"), "`type_of_triplets` must be"),
        (lambda d, y: batch_hard_triplets(d, y.repeat(2)), r"shape \(4,\).*got \(8,\)"),
        (lambda d, y: semihard_triplets(d, y.numpy()), "`labels` must be a torch.Tensor"),
        (lambda d, y: margin_triplets(d.numpy(), y), "`dist` must be a square"),
        (lambda d, y: batch_hard_triplets(d[:3], y), r"square .* got \(3, 4\)"),
    ],
)
def test_mining_functions_refuse_what_they_cannot_mine(call, match):
    dist, labels = torch.rand(4, 4), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match=match):
        call(dist, labels)
