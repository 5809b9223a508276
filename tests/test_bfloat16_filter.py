"""The exact search through a bfloat16 pre-filter (one-thread CPU searches for few neighbours
where bfloat16 products are fast): its rounding bound, its fallback, and that it finds the
neighbours the float32 search finds. Forced on here, whatever this CPU's bfloat16 speed."""

import math

import pytest
import torch

from sk_deepmetric import distances
from sk_deepmetric._devices import torch_threads
from sk_deepmetric.distances import topk_neighbors


@pytest.fixture
def filtered(monkeypatch):
    """Turns the filter on for every size, thread count and CPU; counts its calls and the
    queries it searches again in float32."""
    every = {t: 1 << 20 for t in range(1, 1025)}
    monkeypatch.setattr(distances, "_BFLOAT16_MIN_QUERIES", {False: 1, True: 1})
    monkeypatch.setattr(distances, "_BFLOAT16_MIN_REFERENCE", {False: 1, True: 1})
    monkeypatch.setattr(distances, "_BFLOAT16_MAX_K", {False: every, True: every})
    monkeypatch.setattr(distances, "bfloat16_speedup", lambda: math.inf)
    counts = {"filtered": 0, "again": 0}
    through, again = distances._topk_through_bfloat16, distances._topk_in_float32

    def counted_through(*args, **kwargs):
        counts["filtered"] += 1
        return through(*args, **kwargs)

    def counted_again(queries, *args, **kwargs):
        counts["again"] += queries.shape[0]
        return again(queries, *args, **kwargs)

    monkeypatch.setattr(distances, "_topk_through_bfloat16", counted_through)
    monkeypatch.setattr(distances, "_topk_in_float32", counted_again)
    return counts


def _unfiltered(monkeypatch, *args, **kwargs):
    with monkeypatch.context() as m:
        m.setattr(distances, "_BFLOAT16_FILTER", False)
        return topk_neighbors(*args, **kwargs)


def _integers(seed, n, d, high):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-high, high + 1, (n, d), generator=g).float()


@pytest.mark.parametrize("distance", ["euclidean", "squared_euclidean", "cosine"])
@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("k", [1, 5, 20])
def test_filter_finds_the_float32_neighbours_bit_for_bit(
    filtered, monkeypatch, distance, exclude_self, k
):
    # integers up to 100 in 8 dimensions: the float32 search's scores are exact (sums of
    # products below 2^24) while centring on the mean and bfloat16's 8 bits round them, so
    # the float32 neighbours are the exact ones (ties by index) for the euclidean distances
    ref = _integers(0, 400, 8, 100)
    queries = ref if exclude_self else _integers(1, 60, 8, 100)
    want = _unfiltered(monkeypatch, queries, ref, k, distance, exclude_self)
    got = topk_neighbors(queries, ref, k, distance, exclude_self)
    assert filtered["filtered"] == 1
    assert filtered["again"] < queries.shape[0]  # most were answered from the filter
    assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])
    if distance != "cosine" and not exclude_self:
        assert torch.equal(got[1], _exact_order(queries, ref, k))


@pytest.mark.parametrize("exclude_self", [True, False])
@pytest.mark.parametrize("k", [1, 7])
def test_filter_over_many_tiles_finds_the_float32_neighbours(
    filtered, monkeypatch, exclude_self, k
):
    # tiles of 16 queries x 100 columns, cut to whole multiples of 48 (the bfloat16 tiles'
    # width unit): 7 full tiles of 96 columns and a last one of 48, each merged with the
    # candidates kept so far
    monkeypatch.setattr(distances, "_BFLOAT16_COLUMNS", 48)
    monkeypatch.setattr(distances, "_tile_shape", lambda *args: (16, 100))
    ref = _integers(7, 720, 8, 100)
    queries = ref if exclude_self else _integers(8, 50, 8, 100)
    widths = []
    mm = torch.mm

    def recorded(a, b, **kwargs):
        if a.dtype == torch.bfloat16:  # the full tiles' products
            widths.append(b.shape[1])
        return mm(a, b, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(torch, "mm", recorded)
        got = topk_neighbors(queries, ref, k, exclude_self=exclude_self)
    assert filtered["filtered"] == 1
    assert set(widths) == {96}
    want = _unfiltered(monkeypatch, queries, ref, k, exclude_self=exclude_self)
    assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])
    if not exclude_self:
        assert torch.equal(got[1], _exact_order(queries, ref, k))


def _exact_order(queries, ref, k):
    """The k nearest by squared distances in float64, equal ones by index."""
    exact = ((queries.double()[:, None] - ref.double()) ** 2).sum(2)  # not cdist's products
    rank = torch.argsort(exact, dim=1, stable=True)  # stable: equal distances by index
    return rank[:, :k]


def test_queries_with_near_equal_distances_are_searched_again(filtered, monkeypatch):
    # 60 copies of one vector: for the queries at or near it the k-th and the last candidate
    # are equally far, the bound cannot hold, and those queries (only) are searched again
    ref = _integers(2, 300, 4, 9)
    ref[::5] = ref[0]
    queries = torch.cat([ref[:1] + _integers(3, 20, 4, 1) / 8, _integers(4, 40, 4, 9)])
    for k in (1, 6):  # 3k + 32 candidates at most 60
        before = filtered["again"]
        got = topk_neighbors(queries, ref, k)
        assert 20 <= filtered["again"] - before < queries.shape[0]
        want = _unfiltered(monkeypatch, queries, ref, k)
        assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])
        assert torch.equal(got[1], _exact_order(queries, ref, k))


@pytest.mark.parametrize(("offset", "scale"), [(3.0e5, 1.0), (0.0, 2.0**-40), (0.0, 2.0**40)])
def test_reference_far_from_the_origin_or_of_extreme_scale(filtered, offset, scale):
    # a common offset 10^4 times the spread, where bfloat16 without centring (and float32
    # products) lose every digit, and squared norms outside 2^-60..2^60 (scaled exactly)
    ref, queries = _integers(5, 500, 16, 30), _integers(6, 50, 16, 30)
    ref, queries = ref * scale + offset, queries * scale + offset
    for k in (1, 10):
        got = topk_neighbors(queries, ref, k)
        assert torch.equal(got[1], _exact_order(queries, ref, k))
    assert filtered["filtered"] == 2 and filtered["again"] < queries.shape[0]


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["queries", "reference"])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_non_finite_vectors_raise(filtered, monkeypatch, bad, where, distance):
    ref, queries = _integers(7, 200, 4, 9), _integers(8, 30, 4, 9)
    (queries if where == "queries" else ref)[3, 1] = bad
    with pytest.raises(ValueError, match=f"`{where}` must hold finite values"):
        topk_neighbors(queries, ref, 5, distance)
    assert filtered["filtered"] == 1
    with pytest.raises(ValueError, match=f"`{where}` must hold finite values"):
        _unfiltered(monkeypatch, queries, ref, 5, distance)


@pytest.mark.parametrize("dim", [1, 3, 64, 300])
@pytest.mark.parametrize("scale", [2.0**-25, 1.0, 2.0**25])
def test_bfloat16_scores_stay_within_the_rounding_bound(dim, scale):
    """``q16 @ r16.T`` against ``|q - r|^2 + c`` computed in float64 from the same float32
    vectors, on values just off bfloat16's rounding midpoints (its worst case) and Gaussian
    ones: never negative, never further than the bound (``spread`` plus ``u / (1 - u)``
    of the score)."""
    g = torch.Generator().manual_seed(dim)
    u = 2.0**-8
    midpoints = (1 + u * (1 + 2 * torch.randint(0, 128, (4, 256, dim), generator=g))) * (
        1 + 2.0**-20
    )
    signs = torch.randint(0, 2, midpoints.shape, generator=g) * 2 - 1
    worst = (midpoints * signs)[:2]
    gaussian = torch.randn((2, 256, dim), generator=g, dtype=torch.float64)
    for q, r in (worst, gaussian, (worst[0], gaussian[1])):
        q, r = (q * scale).float(), (r * scale).float()
        r16, r_sq = distances._bfloat16_reference(r, torch.zeros(dim), 1.0)
        assert torch.equal(r16[:, :dim].float(), r.bfloat16().float())
        q_sq = (q.double() ** 2).sum(1).float().double()
        largest = float(r_sq.max()) ** 0.5 * (1 + 2**-20)
        q16, spread = distances._bfloat16_queries(q, q_sq, largest)
        score = torch.mm(q16, r16.T).double()
        offset = (q16[:, -2:].double().sum(1) - q_sq)[:, None]  # c as the factors hold it
        exact = torch.cdist(q.double(), r.double()) ** 2 + offset
        assert (score >= 0).all()
        bound = spread[:, None] + u / (1 - u) * score
        assert ((score - exact).abs() <= bound).all()


def test_the_filter_runs_where_it_measured_faster(filtered, monkeypatch):
    ref, queries = torch.zeros((200, 3)), torch.zeros((10, 3))
    monkeypatch.setattr(distances, "_BFLOAT16_MAX_K", {False: {1: 30, 2: 10}, True: {1: 40}})
    for threads, k in ((1, 30), (2, 10)):
        with torch_threads(threads):
            assert distances._filters_in_bfloat16(queries, ref, k, False)
            assert not distances._filters_in_bfloat16(queries, ref, k + 1, False)  # k too large
    with torch_threads(1):  # with the reference's factors kept: their own limits
        assert distances._filters_in_bfloat16(queries, ref, 40, False, kept=True)
        assert not distances._filters_in_bfloat16(queries, ref, 41, False, kept=True)
    with torch_threads(2):
        assert not distances._filters_in_bfloat16(queries, ref, 1, False, kept=True)
    with torch_threads(3):  # not measured
        assert not distances._filters_in_bfloat16(queries, ref, 1, False)
    with torch_threads(1):
        assert not distances._filters_in_bfloat16(queries.double(), ref.double(), 5, False)
        assert not distances._filters_in_bfloat16(queries, ref[:47], 5, False)  # 3k+32 >= n
        assert not distances._filters_in_bfloat16(queries, ref[:48], 5, True)
        assert distances._filters_in_bfloat16(queries, ref[:48], 5, False)
        for few in ("_BFLOAT16_MIN_QUERIES", "_BFLOAT16_MIN_REFERENCE"):
            for kept in (False, True):
                with monkeypatch.context() as m:
                    m.setitem(getattr(distances, few), kept, 201)
                    # too few, with the factors kept or not; the other limit unchanged
                    assert not distances._filters_in_bfloat16(queries, ref, 5, False, kept)
                    assert distances._filters_in_bfloat16(queries, ref, 5, False, not kept)
        monkeypatch.setattr(distances, "bfloat16_speedup", lambda: 1.4)
        assert not distances._filters_in_bfloat16(queries, ref, 5, False)  # slow bfloat16
        # a chunked search never goes through the filter
        topk_neighbors(queries, ref, 5, chunk_size=4)
    assert filtered["filtered"] == 0


def test_bfloat16_speedup_is_measured_once_per_thread_count(monkeypatch):
    monkeypatch.setattr(distances, "_BFLOAT16_SPEEDUPS", {})
    with torch_threads(1):
        speedup = distances.bfloat16_speedup()
        assert math.isfinite(speedup) and speedup > 0
        assert distances.bfloat16_speedup() == speedup
    assert list(distances._BFLOAT16_SPEEDUPS) == [1]


def test_the_reference_cache_keeps_the_factors_while_the_reference_is_unchanged(
    filtered, monkeypatch
):
    """``reference_cache`` builds the reference's bfloat16 factors once for searches of the
    same, unchanged tensor, and again for another tensor, an in-place change (through a view
    too) or the cosine distance; the neighbours are the uncached search's throughout."""
    builds = []
    prepared = distances._prepared_bfloat16_reference
    monkeypatch.setattr(
        distances,
        "_prepared_bfloat16_reference",
        lambda reference, distance: builds.append(distance) or prepared(reference, distance),
    )
    ref, queries = _integers(0, 300, 8, 100), _integers(1, 40, 8, 100)
    cache = {}

    def search(reference, distance="euclidean"):
        found = topk_neighbors(queries, reference, 5, distance, reference_cache=cache)
        expected = _unfiltered(monkeypatch, queries, reference, 5, distance)
        for got, want in zip(found, expected):
            torch.testing.assert_close(got, want, rtol=0, atol=0)

    search(ref)
    search(ref)
    search(ref, "squared_euclidean")  # the same factors
    assert len(builds) == 1
    search(ref.clone())  # another tensor
    assert len(builds) == 2
    ref[:, 0] += 7  # changed in place: the cached factors are stale
    search(ref)
    ref[:5].mul_(-1)  # through a view
    search(ref)
    assert len(builds) == 4
    search(ref, "cosine")  # unit vectors: other factors
    assert builds[-1] == "cosine" and len(builds) == 5
    # a cache holds the tensor its entry was built from: the memory is never reused by
    # another tensor that would then match the entry's address
    assert cache["bfloat16_reference"][2] is ref
    with pytest.raises(TypeError, match="`reference_cache` must be a dict or None, got list"):
        topk_neighbors(queries, ref, 5, reference_cache=[])
    # no cache: built by every call
    topk_neighbors(queries, ref, 5)
    topk_neighbors(queries, ref, 5)
    assert len(builds) == 7


def test_the_brute_force_index_keeps_the_factors_between_searches(filtered, monkeypatch):
    """The classifier's torch index builds the bfloat16 factors on its first filtered search
    and reuses them; a new ``build`` or unpickling starts without them (a pickle does not
    carry them); the neighbours stay the float32 search's."""
    import pickle

    from sk_deepmetric._search import _BruteSearch

    builds = []
    prepared = distances._prepared_bfloat16_reference
    monkeypatch.setattr(
        distances,
        "_prepared_bfloat16_reference",
        lambda reference, distance: builds.append(1) or prepared(reference, distance),
    )
    ref, queries = _integers(0, 300, 8, 100), _integers(1, 40, 8, 100)
    expected = _unfiltered(monkeypatch, queries, ref, 5)
    index = _BruteSearch("euclidean").build(ref.numpy())
    for _ in range(3):
        dist, ind = index.search(queries.numpy(), 5)
        assert (ind == expected[1].numpy()).all() and (dist == expected[0].numpy()).all()
    assert len(builds) == 1
    state = pickle.dumps(index)
    assert b"bfloat16_reference" not in state
    copy = pickle.loads(state)
    assert (copy.search(queries.numpy(), 5)[1] == expected[1].numpy()).all()
    assert len(builds) == 2
    index.build((ref + 1).numpy())
    assert (index.search((queries + 1).numpy(), 5)[1] == expected[1].numpy()).all()
    assert len(builds) == 3
