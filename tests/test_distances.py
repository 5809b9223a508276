import itertools
import math

import numpy as np
import pytest
import torch

from sk_deepmetric import _blocks, distances
from sk_deepmetric._devices import torch_threads
from sk_deepmetric.distances import (
    cosine_similarity,
    euclidean_distances,
    iter_topk_neighbors,
    paired_distances,
    pairwise_distances,
    search_center,
    squared_euclidean_distances,
    topk_neighbors,
)


def _loop_distance(x, y, distance):
    out = torch.empty(x.shape[0], y.shape[0], dtype=x.dtype)
    for i, j in itertools.product(range(x.shape[0]), range(y.shape[0])):
        diff = x[i] - y[j]
        if distance == "euclidean":
            out[i, j] = diff.norm()
        elif distance == "squared_euclidean":
            out[i, j] = (diff * diff).sum()
        else:
            out[i, j] = 1 - (x[i] @ y[j]) / (x[i].norm() * y[j].norm())
    return out


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("same", [True, False])
def test_pairwise_matches_loop(distance, same):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    y = None if same else torch.randn(4, 5, generator=g, dtype=torch.float64)
    got = pairwise_distances(x, y, distance)
    want = _loop_distance(x, x if same else y, distance)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)


def test_self_distance_diagonal_is_exactly_zero():
    x = torch.randn(50, 16) * 100
    assert torch.all(euclidean_distances(x).diagonal() == 0)
    assert torch.all(squared_euclidean_distances(x).diagonal() == 0)


def test_euclidean_gradient_finite_at_zero_distance():
    x = torch.tensor([[1.0, 2.0], [1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    euclidean_distances(x).sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "fn", [euclidean_distances, squared_euclidean_distances, cosine_similarity]
)
def test_gradcheck(fn):
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(fn, (x, y))
    assert torch.autograd.gradcheck(lambda a: fn(a), (x,))


@pytest.mark.parametrize("offset", [0.0, 1e3, 1e4])
def test_euclidean_distances_and_losses_far_from_the_origin_keep_float32_accuracy(offset):
    # |a|^2 + |b|^2 - 2 a.b rounds relative to the squared norms: at an offset of 1,000 on
    # a spread of 0.1 it was off by 2 (a contrastive loss of 2.18 for 0.61). The rows are
    # moved near the origin first, so the float32 error is that of vectors of the spread's
    # norm R: at most (d + 2) u (|a| + |b|)^2 with u = 2^-24 per squared distance (the
    # sums' rounding), plus the float32 representation of the rows themselves, which the
    # float64 reference below shares (it is computed from the same float32 values).
    from sk_deepmetric.losses import ContrastiveLoss, TripletMarginLoss

    g = torch.Generator().manual_seed(0)
    n, d = 32, 16
    labels = torch.arange(n) // 4
    x = (torch.randn(n, d, generator=g, dtype=torch.float64) * 0.1 + offset).float()
    x64 = x.double()
    centred = x64 - x64.mean(dim=0)
    # the translation is rounded to within a quarter of the spread per coordinate
    radius = float(centred.norm(dim=1).max()) + math.sqrt(d) * 0.25 * float(centred.std())
    bound = (d + 2) * 2.0**-24 * (2 * radius) ** 2
    for y in (None, x[:7]):
        got = squared_euclidean_distances(x, y).double()
        want = squared_euclidean_distances(x64, None if y is None else y.double())
        assert float((got - want).abs().max()) <= bound
    # a loss of the distances moves by at most its Lipschitz constant times their error
    # (distances d >= d_min err by at most bound / (2 d_min)), provided no hinge is within
    # that error of zero (the losses average the non-zero hinges; the count must not move)
    d64 = euclidean_distances(x64)
    same = labels[:, None] == labels[None, :]
    d_min = float(d64[d64 > 0].min())
    err = bound / (2 * d_min)
    triplets = torch.stack(  # d_ap - d_an of every triplet
        [d64[a, p] - d64[a, ~same[a]] for a in range(n) for p in range(n) if same[a, p]]
    )
    # margins whose hinges are clear of zero by more than the error (the first that are)
    margin = next(m for m in (0.2, 0.21, 0.22, 0.23) if (triplets + m).abs().min() > 2 * err)
    neg_margin = next(m for m in (0.5, 0.51, 0.52, 0.53) if (d64[~same] - m).abs().min() > err)
    contrastive = ContrastiveLoss(neg_margin=neg_margin)
    assert abs(float(contrastive(x, labels)) - float(contrastive(x64, labels))) <= err
    triplet = TripletMarginLoss(margin=margin, miner="all")
    assert abs(float(triplet(x, labels)) - float(triplet(x64, labels))) <= 2 * err


def test_cosine_of_zero_vector_is_finite():
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0]])
    s = cosine_similarity(x)
    assert torch.isfinite(s).all() and s[0, 1] == 0


def test_unknown_distance_raises():
    with pytest.raises(ValueError, match=r"`distance` must be one of .* got 'manhattan'"):
        pairwise_distances(torch.zeros(2, 2), distance="manhattan")


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_topk_matches_loop_and_is_chunk_independent(distance, exclude_self):
    g = torch.Generator().manual_seed(1)
    ref = torch.randn(40, 6, generator=g, dtype=torch.float64)
    queries = ref if exclude_self else torch.randn(13, 6, generator=g, dtype=torch.float64)
    k = 5
    full = _loop_distance(queries, ref, distance)
    for qi in range(queries.shape[0]):
        if exclude_self:
            full[qi, qi] = float("inf")
    want_idx = [
        sorted(range(ref.shape[0]), key=lambda j: (full[qi, j], j))[:k]
        for qi in range(queries.shape[0])
    ]
    for chunk in (1, 7, None):
        d, i = topk_neighbors(queries, ref, k, distance, exclude_self, chunk_size=chunk)
        assert i.tolist() == want_idx
        want_d = torch.stack([full[qi, want_idx[qi]] for qi in range(queries.shape[0])])
        torch.testing.assert_close(d, want_d, atol=1e-9, rtol=1e-9)


def test_topk_breaks_ties_by_index():
    ref = torch.tensor([[1.0], [0.0], [1.0], [0.0], [1.0]])
    _, i = topk_neighbors(torch.tensor([[1.0]]), ref, 3)
    assert i.tolist() == [[0, 2, 4]]


@pytest.mark.parametrize(
    ("k", "exclude", "msg"),
    [
        (0, False, r"between 1 and .* \(4\), got 0"),
        (5, False, r"\(4\), got 5"),
        (4, True, r"minus one \(leave-one-out\) \(3\), got 4"),
    ],
)
def test_topk_bad_k(k, exclude, msg):
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match=msg):
        topk_neighbors(x, x, k, exclude_self=exclude)


def test_topk_ties_at_the_cut_off_keep_the_lowest_indices():
    # topk alone returns an arbitrary subset of a row of equal values
    ref = torch.zeros(64, 3)
    for exclude in (False, True):
        _, i = topk_neighbors(ref, ref, 3, exclude_self=exclude)
        want = [[j for j in range(64) if not (exclude and j == q)][:3] for q in range(64)]
        assert i.tolist() == want


@pytest.mark.parametrize("exclude_self", [True, False])
def test_tiling_the_reference_set_gives_the_same_neighbours(monkeypatch, exclude_self):
    from sk_deepmetric import distances

    g = torch.Generator().manual_seed(3)
    ref = torch.randint(0, 3, (300, 4), generator=g).double()  # many exact ties
    queries = ref if exclude_self else torch.randint(0, 3, (50, 4), generator=g).double()
    want = {k: topk_neighbors(queries, ref, k, "euclidean", exclude_self) for k in (6, 12)}
    # a bound of 16 queries x 128 reference samples (8 bytes each); on one CPU thread a tile
    # is half of it, 16 x 64 (five tiles per chunk), widened to 8 k columns for larger k
    monkeypatch.setattr(distances, "_TILE_QUERIES", 16)
    monkeypatch.setattr(_blocks, "CHUNK_BYTES", 16 * 128 * 8)
    n, cpu, cuda = queries.shape[0], torch.device("cpu"), torch.device("cuda")
    for threads in (1, 2):
        with torch_threads(threads):
            half = threads == 1
            assert distances._tile_shape(n, 300, 6, 8, None) == (16, 64 if half else 128)
            assert distances._tile_shape(n, 300, 6, 8, None, cpu) == (16, 64 if half else 128)
            assert distances._tile_shape(n, 300, 12, 8, None) == (16, 96 if half else 128)
            assert distances._tile_shape(n, 300, 6, 8, None, cuda) == (16, 128)
            for k in (6, 12):
                got = topk_neighbors(queries, ref, k, "euclidean", exclude_self)
                torch.testing.assert_close(got[0], want[k][0])
                assert torch.equal(got[1], want[k][1])
            # a k too large for the bound falls back to whole-reference chunks within the
            # bound, and a reference set whose whole rows fit the tile is not tiled
            assert distances._tile_shape(n, 300, 17, 8, None) == (16 * 128 // 300, 300)
            whole = 16 * (64 if half else 128) // 60
            assert distances._tile_shape(n, 60, 6, 8, None) == (whole, 60)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_topk_distances_are_computed_from_the_vectors_in_float32(distance):
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(300, 32, generator=g) * 10 + 5  # large norms: the expansion rounds
    queries = torch.cat([ref[::7], torch.randn(20, 32, generator=g) * 10 + 5])
    d, i = topk_neighbors(queries, ref, 4, distance)
    n_dup = len(range(0, 300, 7))
    assert torch.equal(i[:n_dup, 0], torch.arange(0, 300, 7))  # each duplicate finds itself
    assert torch.equal(d[:n_dup, 0], torch.zeros(n_dup))
    assert bool((d >= 0).all())
    # the search's matrix-product form alone is off by ~1e-3 here (the float32 expansion)
    assert euclidean_distances(ref[::7], ref)[:, ::7].diagonal().max() > 1e-4
    want = _loop_distance(queries.double(), ref.double(), distance)
    torch.testing.assert_close(d.double(), want.gather(1, i), rtol=1e-5, atol=1e-5)
    assert torch.all(d[:, 1:] >= d[:, :-1])


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_paired_distances_match_loop_and_gradcheck(distance):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(6, 3, generator=g, dtype=torch.float64)
    want = torch.stack(
        [_loop_distance(x[i : i + 1], y[i : i + 1], distance)[0, 0] for i in range(6)]
    )
    torch.testing.assert_close(paired_distances(x, y, distance), want, atol=1e-12, rtol=1e-12)
    assert torch.autograd.gradcheck(lambda a: paired_distances(a, y, distance), (x,))


def test_paired_distances_of_duplicates_are_zero_with_zero_gradient():
    x = (torch.randn(4, 8) * 100).requires_grad_(True)
    d = paired_distances(x, x.detach().clone())
    assert (d == 0).all()
    d.sum().backward()
    assert (x.grad == 0).all()
    with pytest.raises(ValueError, match=r"`x` and `y` must be 2-D tensors of one shape"):
        paired_distances(torch.zeros(3, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"`distance` must be one of"):
        paired_distances(torch.zeros(3, 2), torch.zeros(3, 2), "manhattan")


@pytest.mark.parametrize("selection", ["topk", "keys", "keys, tiles compared whole"])
@pytest.mark.parametrize("values", ["ties", "integers", "normal", "infinities", "increasing"])
def test_tile_by_tile_selection_is_the_full_selection_bit_for_bit(values, selection):
    """Merging the tiles of a score matrix one at a time (block minima on the first tile,
    the kept k-th value as a threshold on the next ones, narrow tiles whole) keeps the same
    k entries, in the same order (value, then column), as one selection over every column,
    ties included; with and without columns after a tile's last whole block, for block
    sizes from 4 to 32 columns, and with tiles of which no entry is kept; with the entries
    kept as (value, index) pairs and selected by ``torch.topk``, and as 64-bit keys selected
    by numpy's partition, with the tiles after the first cut into blocks or compared whole
    with the kept k-th value (as on one thread)."""
    from sk_deepmetric.distances import (
        _block_size,
        _merged_with_tile,
        _ordered,
        _smallest_k_by_index,
    )

    keyed = selection != "topk"
    g = torch.Generator().manual_seed(0)
    for tile in (1024, 1024 + 37, 3201, 3):
        for k in (1, 5, 7, 40):
            if tile == 1024:  # the first tile is pruned by its block minima for every k
                assert tile // _block_size(tile, k) >= 4 * (k + 1)
            shape = (33, 5 * tile + 11)
            if values == "ties":
                score = torch.randint(0, 4, shape, generator=g).float()
            elif values == "integers":
                score = torch.randint(0, 1000, shape, generator=g).float()
            elif values == "increasing":  # no entry of a later tile enters: none is read
                score = torch.arange(shape[1]).float() + torch.rand(shape, generator=g)
            else:
                score = torch.randn(shape, generator=g)
            if values == "infinities":  # as left by exclude_self, and more: ties at +inf
                score[torch.rand(shape, generator=g) < 0.9] = math.inf
            # a buffer wider than the tiles, as the last, narrower tile of a search meets it
            mask = np.empty((33, tile + 5), dtype=bool) if selection.endswith("whole") else None
            best = None
            for col in range(0, shape[1], tile):
                tile_scores = score[:, col : col + tile].contiguous()
                best = _merged_with_tile(best, tile_scores, col, k, keyed, mask)
            best = _ordered(best, keyed)
            full = _smallest_k_by_index(score, k)
            assert torch.equal(best[0], full[0]) and torch.equal(best[1], full[1])


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("exclude_self", [True, False])
def test_keyed_selection_gives_the_same_neighbours_bit_for_bit(
    monkeypatch, distance, exclude_self
):
    """float32 on a CPU selects with 64-bit keys and numpy's partition where numpy has SIMD
    kernels (forced on and off here): the same neighbours, order and distances, with many
    exact ties, whole-reference chunks and tiles on both sides, on one thread (tiles after
    the first compared whole, here from k = 1) and on two (cut into blocks)."""
    from sk_deepmetric import _mining, distances

    monkeypatch.setattr(distances, "_COMPARE_FROM_K", 1)
    g = torch.Generator().manual_seed(4)
    ref = torch.randint(-2, 3, (300, 4), generator=g).float()  # many exact ties
    queries = ref if exclude_self else torch.randint(-2, 3, (50, 4), generator=g).float()
    for tiles in (False, True):
        if tiles:  # 16 x 64 per tile on one thread, 16 x 128 on two
            monkeypatch.setattr(distances, "_TILE_QUERIES", 16)
            monkeypatch.setattr(_blocks, "CHUNK_BYTES", 16 * 128 * 4)
        for k in (1, 3, 6):
            got = []
            for keyed, threads in ((False, 2), (True, 1), (True, 2)):
                monkeypatch.setattr(_mining, "SORT_KEYS", keyed)
                assert _mining.selects_with_keys(queries, 300) == keyed
                with torch_threads(threads):
                    got.append(topk_neighbors(queries, ref, k, distance, exclude_self))
            for other in got[1:]:
                assert torch.equal(got[0][0], other[0]) and torch.equal(got[0][1], other[1])
            if not exclude_self and distance != "cosine":
                # small integers: exact float32 scores, so the ties are float64's, by index
                want = topk_neighbors(queries.double(), ref.double(), k, distance)[1]
                assert torch.equal(got[1][1], want)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_float64_vectors_are_ranked_in_float64(distance):
    # neighbours 3e-6 and 1e-6 away from each query (0 to 3e-6 apart in angle): float32
    # rounding of the scores (~1e-7 relative to norms ~1) cannot tell them apart, float64 can
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 3))
    dirs = rng.normal(size=(20, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    if distance == "cosine":  # move across the direction of each vector, not along it
        dirs -= (dirs * base).sum(1, keepdims=True) * base / (base * base).sum(1, keepdims=True)
        dirs *= np.linalg.norm(base, axis=1, keepdims=True) / np.linalg.norm(dirs, axis=1)[:, None]
    near, far = base + 1e-6 * dirs, base + 3e-6 * dirs
    reference = torch.from_numpy(np.concatenate([far, near]))
    got = topk_neighbors(torch.from_numpy(base), reference, 1, distance)[1].ravel()
    assert torch.equal(got, torch.arange(20, 40))
    chunks = iter_topk_neighbors(torch.from_numpy(base), reference, 1, distance)
    assert torch.equal(torch.cat([c[2] for c in chunks]).ravel(), torch.arange(20, 40))


def _near_duplicates(distance, n=300, d=16, seed=0):
    """Pairs of reference vectors 1e-3 apart (norms ~12, so that the float32 scores
    ``|r|^2 - 2 q.r``, rounded to ~1e-5, cannot order them), each with a query 0.3e-3 from
    the first and 0.7e-3 from the second: float32 queries, reference, and the float64
    distances the neighbours are checked with."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n, d)) * 3
    step = rng.normal(size=(n, d))
    if distance == "cosine":  # across each vector's direction, which cosine measures
        step -= (step * centers).sum(1, keepdims=True) * centers / (centers**2).sum(1)[:, None]
    step *= 1e-3 / np.linalg.norm(step, axis=1, keepdims=True)
    reference = np.concatenate([centers, centers + step]).astype(np.float32)
    queries = (centers + 0.3 * step).astype(np.float32)
    return torch.from_numpy(queries), torch.from_numpy(reference)


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
def test_float32_search_is_exact_where_its_scores_cannot_order_the_vectors(distance):
    queries, reference = _near_duplicates(distance)
    n = queries.shape[0]
    full = _loop_distance(queries.double(), reference.double(), distance)
    # the float64 distances: the first of each pair is the nearest, the second the next
    assert bool((full.argsort(dim=1)[:, :2] == torch.stack([torch.arange(n)] * 2, 1)
                 + torch.tensor([0, n])).all())  # fmt: skip
    want = torch.stack([torch.arange(n), torch.arange(n) + n], dim=1)
    for chunk in (None, 7):
        _, got = topk_neighbors(queries, reference, 2, distance, chunk_size=chunk)
        assert torch.equal(got, want)
        chunks = iter_topk_neighbors(queries, reference, 2, distance, refine=True)
        assert torch.equal(torch.cat([c[2] for c in chunks]), want)
    # leave-one-out: each reference vector's nearest is its pair's other half
    _, got = topk_neighbors(reference, reference, 1, distance, exclude_self=True)
    assert torch.equal(got.ravel(), torch.cat([torch.arange(n) + n, torch.arange(n)]))


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_float32_search_of_crowded_neighbours_goes_on_in_float64(distance):
    # 12 vectors within 1e-3 of each other, far from the origin: no float32 score tells
    # them apart, not even with the extra candidates; float64 does
    rng = np.random.default_rng(2)
    center = rng.normal(size=(1, 16)) * 3
    reference = center + 1e-3 * rng.normal(size=(12, 16))
    reference = np.concatenate([reference, rng.normal(size=(50, 16)) * 3]).astype(np.float32)
    queries = (center + 1e-3 * rng.normal(size=(4, 16))).astype(np.float32)
    queries, reference = torch.from_numpy(queries), torch.from_numpy(reference)
    full = _loop_distance(queries.double(), reference.double(), distance)
    want = torch.tensor([sorted(range(full.shape[1]), key=lambda j: (full[q, j], j))[:6]
                         for q in range(full.shape[0])])  # fmt: skip
    d, got = topk_neighbors(queries, reference, 6, distance)
    assert torch.equal(got, want)
    assert d.dtype == torch.float32


def _count_float64_searches(monkeypatch) -> list:
    """A list that receives the number of queries each float64 search takes again."""
    searched = []
    original = distances._Float64Reference.search_missed

    def search_missed(self, done, *args):
        searched.append(sum(int(d[:, 0].isnan().sum()) for _, d, _ in done))
        original(self, done, *args)

    monkeypatch.setattr(distances._Float64Reference, "search_missed", search_missed)
    return searched


def test_one_far_reference_vector_does_not_send_every_query_to_float64(monkeypatch):
    # the rounding bound of a vector left out grows with its norm, but one farther from the
    # origin than |q| + sqrt(|q|^2 + the k-th score) is farther than the k-th whatever its
    # rounding: a single vector of norm 1,000 among vectors of norm ~8 changes nothing
    g = torch.Generator().manual_seed(0)
    reference = torch.randn(2000, 16, generator=g) * 2
    reference[7] = 1000.0 / 4  # norm 1,000
    queries = torch.randn(300, 16, generator=g) * 2
    searched = _count_float64_searches(monkeypatch)
    _, got = topk_neighbors(queries, reference, 5)
    assert sum(searched) == 0
    full = torch.cdist(queries.double(), reference.double())
    assert torch.equal(got, full.topk(5, dim=1, largest=False).indices)


@pytest.mark.parametrize(
    "setting", [("legacy", "high"), ("legacy", "medium"), ("cuda", "tf32"), ("mkldnn", "bf16")]
)
def test_search_under_reduced_float32_matmul_precision(setting):
    # TF32 or bfloat16 products (torch's "high" and "medium" float32 matmul precision, or a
    # backend's fp32_precision, which on a CPU makes "medium" and "bf16" bfloat16 products)
    # are not what the rounding bound covers: the search runs uncertified, as it did before,
    # at any dimension, and its neighbours are as near as those products can tell
    g = torch.Generator().manual_seed(0)
    reference, queries = torch.randn(300, 2048, generator=g), torch.randn(20, 2048, generator=g)
    api, precision = setting
    legacy = torch.get_float32_matmul_precision()
    try:
        if api == "legacy":
            torch.set_float32_matmul_precision(precision)
        else:  # the per-backend setting, mixed with the legacy one
            getattr(torch.backends, api).matmul.fp32_precision = precision
        for distance in ("euclidean", "cosine"):
            dist, ind = topk_neighbors(queries, reference, 5, distance)
            full = pairwise_distances(queries.double(), reference.double(), distance)
            # the distances are those of the vectors found, measured from them, ascending
            torch.testing.assert_close(dist.double(), full.gather(1, ind), rtol=1e-5, atol=1e-6)
            assert bool((dist[:, 1:] >= dist[:, :-1]).all())
            # bfloat16 products of 2,048 terms rank to ~2 * 2^-8 of the squared norms
            # (~4,096 here) against distances of ~64: the k-th is within a few percent
            kth = full.topk(5, dim=1, largest=False).values[:, -1]
            assert bool((dist[:, -1].double() <= kth * 1.05).all())
    finally:
        torch.backends.cuda.matmul.fp32_precision = "none"
        torch.backends.mkldnn.matmul.fp32_precision = "none"
        torch.set_float32_matmul_precision(legacy)


def test_float32_search_vouches_for_its_neighbours_with_few_candidates_more(monkeypatch):
    # k = 1: the two nearest are 1e-3 apart far from the origin, which the 2nd candidate's
    # score cannot vouch for, but the 5th (k + k // 16 + 4), ~4 away, can: the k nearest
    # of the 5 measured from the vectors, with no float64 search
    queries, reference = _near_duplicates("euclidean", n=100)
    calls = []
    certified = distances._certified

    def recording(vals, inds, k, *rest):
        held = certified(vals, inds, k, *rest)
        calls.append((vals.shape[1], int((~held).sum())))
        return held

    monkeypatch.setattr(distances, "_certified", recording)
    _, got = topk_neighbors(queries, reference, 1, "euclidean")
    assert torch.equal(got.ravel(), torch.arange(100))
    assert calls[0] == (2, 100)  # the 2nd candidate vouches for none
    assert calls[1] == (5, 0)  # the 5th for all


def _x(n=6, d=3, **kwargs):
    return torch.arange(n * d, **kwargs).reshape(n, d).float()


@pytest.mark.parametrize(
    ("queries", "reference", "kwargs", "error", "match"),
    [
        (_x().numpy(), _x(), {}, TypeError, "`queries` must be a torch.Tensor"),
        (_x(), [[1.0]], {}, TypeError, "`reference` must be a torch.Tensor"),
        (_x()[0], _x(), {}, ValueError, r"`queries` must be a 2-D floating.*shape \(3,\)"),
        (_x().long(), _x().long(), {}, ValueError, "2-D floating-point tensor.*int64"),
        (_x(d=4), _x(), {}, ValueError, "same number of features and dtype, got 4 features"),
        (_x().double(), _x(), {}, ValueError, "float64 and 3 of torch.float32"),
        (_x(), _x(), {"distance": "cosin"}, ValueError, "Did you mean 'cosine'"),
        (_x(), _x(), {"distance": "manhattan"}, ValueError, "`distance` must be one of"),
        (
            _x(),
            _x(),
            {"chunk_size": 0},
            ValueError,
            r"`chunk_size` must be in the range \[1, inf\], got ",
        ),
        (
            _x(),
            _x(),
            {"chunk_size": -1},
            ValueError,
            r"`chunk_size` must be in the range \[1, inf\], got ",
        ),
        (_x(), _x(), {"chunk_size": 2.0}, ValueError, "`chunk_size` must be an integer"),
        (_x(), _x(), {"k": 2.0}, ValueError, "`k` must be an integer, got 2.0"),
        (_x(), _x(), {"k": True}, ValueError, "`k` must be an integer"),
        (_x(), _x(), {"k": torch.tensor(7)}, ValueError, r"between 1 and .* \(6\), got 7"),
    ],
)
def test_topk_rejects_what_it_cannot_search(queries, reference, kwargs, error, match):
    kwargs = {"k": 2, **kwargs}
    with pytest.raises(error, match=match):
        topk_neighbors(queries, reference, **kwargs)
    with pytest.raises(error, match=match):
        next(iter_topk_neighbors(queries, reference, **kwargs))


@pytest.mark.parametrize(
    "fn",
    [pairwise_distances, cosine_similarity, euclidean_distances, squared_euclidean_distances],
)
@pytest.mark.parametrize(
    ("x", "y", "error", "match"),
    [
        (_x().numpy(), None, TypeError, "`x` must be a torch.Tensor.*got ndarray"),
        (_x(), [[1.0, 2.0, 3.0]], TypeError, "`y` must be a torch.Tensor.*got list"),
        (_x()[0], None, ValueError, r"`x` must be a 2-D floating.*shape \(3,\)"),
        (_x(), _x().long(), ValueError, "`y` must be a 2-D floating.*int64"),
        (_x(), _x(d=4), ValueError, "same number of features and dtype, got 3 features"),
        (_x(), _x().double(), ValueError, "float32 and 3 of torch.float64"),
    ],
)
def test_pairwise_functions_name_the_argument_they_cannot_take(fn, x, y, error, match):
    with pytest.raises(error, match=match):
        fn(x, y)


def test_paired_distances_name_the_argument_they_cannot_take():
    with pytest.raises(TypeError, match=r"`x` must be a torch.Tensor.*got ndarray"):
        paired_distances(_x().numpy(), _x())
    with pytest.raises(ValueError, match="same number of features and dtype, got 3 features"):
        paired_distances(_x(), _x(d=4))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cosine_search_puts_zero_vectors_at_distance_one(dtype):
    # as pairwise_distances has it: cosine similarity 0 with everything, itself included
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [3.0, 4.0], [0.0, 2.0]], dtype=dtype)
    dist, ind = topk_neighbors(x, x, 5, distance="cosine")
    want = pairwise_distances(x, distance="cosine")
    # distances <= 2 of 2-D vectors, each way a few (d + 2 = 4) roundings of eps/2 of
    # values <= 2 from the exact one: 8 eps bounds their difference
    eps = torch.finfo(dtype).eps
    for i in range(5):
        torch.testing.assert_close(dist[i], want[i, ind[i]], rtol=0, atol=8 * eps)
    assert torch.equal(dist[0], torch.ones(5, dtype=dtype))
    assert torch.equal(ind[0], torch.arange(5))  # all tied: ordered by index
    assert torch.equal(dist[2, -2:], torch.ones(2, dtype=dtype))  # the two zero vectors
    # unit vectors whose squared norms round off 1: still 1 exactly from a zero query
    reference = torch.randn(50, 37, generator=torch.Generator().manual_seed(0), dtype=dtype)
    dist, ind = topk_neighbors(torch.zeros(1, 37, dtype=dtype), reference, 5, "cosine")
    assert torch.equal(dist, torch.ones(1, 5, dtype=dtype))
    assert torch.equal(ind, torch.arange(5)[None])


def test_search_refuses_queries_whose_squares_overflow():
    big = torch.tensor([[3e19, 0.0, 0.0], [-3e19, 0.0, 0.0]])  # squares beyond float32
    with pytest.raises(ValueError, match="`queries` must hold finite values whose squares fit"):
        topk_neighbors(big, _x(), 1)
    with pytest.raises(ValueError, match="`reference` must hold finite values whose squares"):
        topk_neighbors(_x(), big, 1)


@pytest.mark.parametrize(
    "reference, match",
    [
        (np.zeros((3, 2)), "`reference` must be a torch.Tensor"),
        (torch.zeros(4), r"`reference` must be a 2-D floating-point tensor .* shape \(4,\)"),
    ],
)
def test_search_center_names_what_it_cannot_take(reference, match):
    with pytest.raises((TypeError, ValueError), match=match):
        search_center(reference)
    with pytest.raises(ValueError, match="`distance` must be one of"):
        search_center(_x(), "manhattan")


def test_topk_takes_k_as_a_0d_integer_tensor_or_numpy_integer():
    want = topk_neighbors(_x(), _x(), 2)
    for k in (torch.tensor(2), np.int64(2)):
        got = topk_neighbors(_x(), _x(), k)
        assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])


@pytest.mark.parametrize(
    ("k", "match"),
    [
        (torch.tensor([1, 2]), r"one integer per query \(6\), got shape \(2,\)"),
        (torch.tensor([1.0] * 6), "dtype torch.float32"),
        (torch.tensor([1, 2, 0, 1, 1, 1]), r"between 1 and .* got 0"),
        (torch.tensor([1, 2, 9, 1, 1, 1]), r"between 1 and .* got 9"),
    ],
)
def test_iterated_search_checks_k_per_query(k, match):
    with pytest.raises(ValueError, match=match):
        next(iter_topk_neighbors(_x(), _x(), k))


def test_iterated_search_of_no_queries_yields_nothing():
    empty = _x()[:0]
    assert list(iter_topk_neighbors(empty, _x(), torch.zeros(0, dtype=torch.long))) == []
    assert list(iter_topk_neighbors(empty, _x(), 3)) == []
