"""Nearest-neighbour search backends of ``EmbeddingKNeighborsClassifier``.

Each backend has one interface, ``build(reference)`` then
``search(queries, k, exclude_self=False) -> (distances, indices)``, with distances in the
torch backend's units (euclidean, or the cosine distance ``1 - cos``):

- ``_BruteSearch``: exact, chunked torch matrix product + top-k on any torch device
  (:func:`sk_deepmetric.distances.topk_neighbors`);
- ``_FaissFlatSearch``: exact, a faiss flat index (same neighbours, their distances measured
  from the vectors as the torch backend's are);
- ``_FaissIVFSearch``: approximate, a faiss inverted-file index (``IndexIVFFlat``).

faiss is optional: it is imported only when a faiss backend needs it, so that the brute
backend works without it.

``faiss_flat_speedup`` times both exact backends on this machine, once per process and k, for
``algorithm="auto"``: which one is faster depends on the BLAS kernels each library runs on
this CPU, not on a size rule.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch

from ._blocks import measured_distances_
from ._devices import as_tensor
from .distances import filters_in_bfloat16, search_center, topk_neighbors

_FAISS_HINT = (
    "Install it with `pip install sk_deepmetric[faiss]` (or conda's faiss-cpu/faiss-gpu)."
)
# IVF k-means: faiss's own default seed, fixed so that the index is the same on every fit.
_IVF_SEED = 1234
# float32 values of the neighbours gathered at once to measure their distances (32 MiB)
_REFINE_FLOATS = 1 << 23


def _import_faiss(algorithm: str):
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            f"algorithm={algorithm!r} needs the faiss package, which is not installed. "
            f"{_FAISS_HINT}"
        ) from exc
    return faiss


def faiss_installed() -> bool:
    try:
        _import_faiss("auto")
    except ImportError:
        return False
    return True


def _normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit rows, a zero row staying zero (as ``torch.nn.functional.normalize``)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, 1e-12), dtype=np.float32)


def _sort_by_distance_then_index(dist: np.ndarray, ind: np.ndarray):
    """Order each row by distance, then by index among equal distances (as the torch backend)."""
    order = np.lexsort((ind, dist), axis=-1)
    return np.take_along_axis(dist, order, axis=1), np.take_along_axis(ind, order, axis=1)


def _drop_self(dist: np.ndarray, ind: np.ndarray):
    """Remove each row's own index from a ``k + 1`` search; the last column if it is absent.

    With more than ``k`` exact duplicates the row itself can fall outside the ``k + 1``
    nearest; any duplicate is then as near as itself, and dropping the last column keeps the
    lower indices, as the torch backend's leave-one-out does.
    """
    keep = ind != np.arange(ind.shape[0])[:, None]
    absent = keep.all(axis=1)
    keep[absent, -1] = False
    n, k = ind.shape[0], ind.shape[1] - 1
    return dist[keep].reshape(n, k), ind[keep].reshape(n, k)


class _BruteSearch:
    """Exact search: chunked torch matrix product and top-k, on ``device``."""

    def __init__(self, metric: str, device: str | torch.device = "cpu", chunk_size=None):
        self.metric = metric
        self.device = torch.device(device)
        self.chunk_size = chunk_size

    def build(self, reference: np.ndarray) -> _BruteSearch:
        # zero-copy for a float32 CPU array; vectors far from the origin for their spread are
        # centred once here, rather than by every search (see search_center)
        self.reference_ = as_tensor(reference, device=self.device)
        self.center_ = search_center(self.reference_, self.metric)
        if self.center_ is not None:
            self.reference_ = self.reference_ - self.center_
        # what the searches derive from the reference alone, built by the first that needs it
        # (topk_neighbors' bfloat16 factors: half the reference's memory)
        self._reference_cache = {}
        return self

    def search(self, queries: np.ndarray | None, k: int, exclude_self: bool = False):
        q = self.reference_ if exclude_self else as_tensor(queries, device=self.device)
        if self.center_ is not None and not exclude_self:
            q = q - self.center_
        dist, ind = topk_neighbors(
            q,
            self.reference_,
            k,
            self.metric,
            exclude_self,
            self.chunk_size,
            reference_cache=self._reference_cache,
        )
        return dist.cpu().numpy(), ind.cpu().numpy()

    def __getstate__(self):
        # a model searched on a GPU unpickles on a CPU-only machine
        state = self.__dict__.copy()
        state["reference_"] = self.reference_.cpu().numpy()
        if state.get("center_") is not None:
            state["center_"] = self.center_.cpu().numpy()
        state["device"] = str(self.device)
        state.pop("_reference_cache", None)  # rebuilt where needed after unpickling
        return state

    def __setstate__(self, state):
        device = torch.device(state["device"])
        if device.type == "cuda" and not torch.cuda.is_available():
            device = torch.device("cpu")
        self.__dict__.update(state, device=device)
        self.reference_ = torch.as_tensor(state["reference_"], device=device)
        center = state.get("center_")  # absent from models pickled before it existed
        self.center_ = None if center is None else torch.as_tensor(center, device=device)
        self._reference_cache = {}


class _FaissFlatSearch:
    """Exact search with a faiss flat index: ``IndexFlatL2``, or ``IndexFlatIP`` on unit rows.

    Distances come back in the torch backend's units: euclidean (not squared), and ``1 - cos``.
    """

    algorithm = "faiss"

    def __init__(self, metric: str):
        self.metric = metric

    def _new_index(self, faiss, d: int, reference: np.ndarray):
        return faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        if self.metric == "cosine":
            return _normalize_rows(x)
        x = np.ascontiguousarray(x, dtype=np.float32)
        # faiss ranks by the same float32 expansion as the torch search: centred likewise
        return x if self.center_ is None else x - self.center_

    def build(self, reference: np.ndarray):
        faiss = _import_faiss(self.algorithm)
        center = search_center(as_tensor(np.asarray(reference, np.float32)), self.metric)
        self.center_ = None if center is None else center.numpy()
        reference = self._prepare(reference)
        self.index_ = self._new_index(faiss, reference.shape[1], reference)
        self.index_.add(reference)
        return self

    def search(self, queries: np.ndarray | None, k: int, exclude_self: bool = False):
        # np.asarray: faiss.contrib.torch_utils (imported by pytorch-metric-learning, for one)
        # patches faiss indexes to return torch tensors
        if exclude_self:
            queries = np.asarray(self.index_.reconstruct_n(0, self.index_.ntotal))
        else:
            queries = self._prepare(queries)
        ind = np.asarray(self.index_.search(queries, k + int(exclude_self))[1])
        self._check_found(ind)
        dist, ind = _sort_by_distance_then_index(self._refined(queries, ind), ind)
        if exclude_self:
            dist, ind = _drop_self(dist, ind)
        return dist.astype(np.float32, copy=False), ind.astype(np.int64, copy=False)

    def _refined(self, queries: np.ndarray, ind: np.ndarray) -> np.ndarray:
        """The distances of the neighbours ``ind`` of the prepared ``queries``, measured from
        the vectors, as the torch backend measures its neighbours'.

        faiss reports ``1 - <u, v>`` or ``|q|^2 + |r|^2 - 2 q.r``, whose float32 rounding puts
        a duplicate ~1e-7 (cosine) or more away rather than at 0, where ``weights="distance"``
        gives a duplicate the whole vote. So the same measure as
        :func:`~sk_deepmetric.distances.topk_neighbors`'
        (:func:`sk_deepmetric._blocks.measured_distances_`), in blocks of queries whose
        gathered neighbours stay within ~32 MiB.
        """
        n, k = ind.shape
        d = queries.shape[1]
        dist = np.empty((n, k), dtype=np.float32)
        block = max(1, _REFINE_FLOATS // max(1, k * d))
        for start in range(0, n, block):
            i = ind[start : start + block]
            neighbours = np.asarray(self.index_.reconstruct_batch(i.ravel()), dtype=np.float32)
            measured_distances_(
                as_tensor(np.ascontiguousarray(queries[start : start + block], np.float32)),
                torch.from_numpy(neighbours.reshape(*i.shape, d)),
                self.metric,
                torch.from_numpy(dist[start : start + block]),
            )
        return dist

    def _check_found(self, ind: np.ndarray) -> None:
        """A flat index always finds k neighbours; an IVF index may not (see the subclass)."""

    def __getstate__(self):
        state = self.__dict__.copy()
        if "index_" in state:
            state["index_"] = _import_faiss(self.algorithm).serialize_index(self.index_)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("center_", None)  # absent from models pickled before it
        if "index_" in state:
            self.index_ = _import_faiss(self.algorithm).deserialize_index(state["index_"])


class _FaissIVFSearch(_FaissFlatSearch):
    """Approximate search with a faiss ``IndexIVFFlat`` trained on the reference set.

    The reference vectors are split into ``n_lists`` k-means cells; a query scans the
    ``n_probe`` cells nearest to it. ``n_probe == n_lists`` scans everything (exact).
    """

    algorithm = "faiss_ivf"

    def __init__(self, metric: str, n_lists: int, n_probe: int):
        super().__init__(metric)
        self.n_lists = n_lists
        self.n_probe = n_probe

    def _new_index(self, faiss, d: int, reference: np.ndarray):
        metric = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        quantizer = faiss.IndexFlatIP(d) if self.metric == "cosine" else faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, self.n_lists, metric)
        index.cp.seed = _IVF_SEED
        # small reference sets are fine to cluster; do not print faiss's sample-size warning
        index.cp.min_points_per_centroid = 1
        index.train(reference)
        index.nprobe = min(self.n_probe, self.n_lists)
        # keep the quantizer alive as long as the index (faiss does not own it here)
        self.quantizer_ = quantizer
        return index

    def _check_found(self, ind: np.ndarray) -> None:
        if (ind < 0).any():
            raise ValueError(
                f"algorithm='faiss_ivf' found fewer than {ind.shape[1]} neighbours for some "
                f"queries in the `n_probe` ({self.index_.nprobe}) of `n_lists` "
                f"({self.n_lists}) cells it scanned; increase `n_probe` or decrease `n_lists`."
            )

    def build(self, reference: np.ndarray):
        super().build(reference)
        self.index_.make_direct_map()  # reconstruct_n, for the leave-one-out queries
        return self

    def __getstate__(self):
        state = super().__getstate__()
        state.pop("quantizer_", None)  # serialised inside the index
        return state


#: ``algorithm="auto"`` picks faiss flat only where the calibration finds it at least this many
#: times faster than torch brute force: closer than this, the run-to-run spread of a timing
#: could pick either, and both return the same neighbours.
AUTO_FAISS_MIN_SPEEDUP = 1.25

# the calibration search: reference vectors, queries (x dimension, a constant cost), the
# largest k it runs at, and its repeats
_CALIBRATION_REFERENCE = 20_000
_CALIBRATION_WORK = 128_000  # queries x dimension
_CALIBRATION_MAX_K = 1024
_CALIBRATION_REPEATS = 3
# the second calibration, at a size where torch brute force filters with bfloat16 products
# (see faiss_flat_speedup): reference vectors and queries
_PREFILTER_CALIBRATION = (100_000, 1_024)

# (dimension, metric, calibration k, torch threads, faiss threads, at the pre-filter's size)
# -> brute time / faiss time
_speedups: dict[tuple[int, str, int, int, int, bool], float] = {}


def calibration_k(k: int) -> int:
    """The number of neighbours the calibration for searches of ``k`` runs at.

    The power of two nearest to ``k`` in ratio (1, 2, 4, ..., at most 1,024), so that nearby
    ``k`` share one calibration. It matters: faiss's lead over torch brute force grows with
    ``k`` (docs/benchmarks.md), and one calibration at a fixed ``k`` picked the slower backend
    for larger ones.
    """
    return min(_CALIBRATION_MAX_K, 1 << max(0, round(math.log2(max(1, k)))))


def calibration_data(
    dim: int, n_reference: int = _CALIBRATION_REFERENCE, n_queries: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The reference and query vectors of the calibration search in ``dim`` dimensions.

    The same arrays for the same arguments on every call and machine (a fixed seed).
    ``n_queries`` defaults to :data:`_CALIBRATION_WORK` / ``dim``, within 100-2,000.
    """
    rng = np.random.default_rng(0)
    if n_queries is None:
        n_queries = min(2_000, max(100, _CALIBRATION_WORK // dim))
    reference = rng.standard_normal((n_reference, dim), dtype=np.float32)
    return reference, rng.standard_normal((n_queries, dim), dtype=np.float32)


def faiss_flat_speedup(dim: int, metric: str, k: int, n_reference: int | None = None) -> float:
    """How many times faster faiss flat is than torch brute force here for ``k`` neighbours.

    Below 1: slower. Both exact backends index the same calibration reference once and run
    the same search of it (:func:`calibration_data`, :func:`calibration_k` neighbours, on the
    CPU with the thread counts in force), interleaved :data:`_CALIBRATION_REPEATS` times; the
    ratio of their best search times is cached per process for ``(dim, metric,
    calibration_k(k), threads)``. It took 0.4-0.8 s on one or two cores at 16 to 512
    dimensions and k = 10, 0.6-1.0 s at 128 dimensions and k = 256 (docs/benchmarks.md),
    once. Needs faiss.

    Torch brute force filters large searches for few neighbours with bfloat16 products where
    those are fast (:func:`~sk_deepmetric.distances.filters_in_bfloat16`), which the
    calibration's 20,000 vectors are too few for. So where faiss wins that calibration and a
    search of ``n_reference`` vectors (``None``: unknown) would be filtered, the answer comes
    from a second calibration at a size where the filter runs
    (:data:`_PREFILTER_CALIBRATION`; 1-2 s once, docs/benchmarks.md).
    """
    speedup = _calibrated(dim, metric, k, False)
    n_ref, n_queries = _PREFILTER_CALIBRATION
    if (
        speedup >= AUTO_FAISS_MIN_SPEEDUP
        and n_reference is not None
        and filters_in_bfloat16(n_queries, n_reference, k, reference_kept=True)
        and filters_in_bfloat16(n_queries, n_ref, calibration_k(k), reference_kept=True)
    ):
        speedup = _calibrated(dim, metric, k, True)
    return speedup


def calibration_key(dim: int, metric: str, k: int, prefiltered: bool) -> tuple:
    """The key in ``_speedups`` of the calibration for ``k`` neighbours (at the pre-filter's
    size or not) with the thread counts in force. Needs faiss."""
    faiss = _import_faiss("auto")
    threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    return (dim, metric, calibration_k(k), *threads, prefiltered)


def _calibrated(dim: int, metric: str, k: int, prefiltered: bool) -> float:
    """:func:`faiss_flat_speedup`'s ratio from one calibration, at the pre-filter's size or
    not, cached."""
    key = calibration_key(dim, metric, k, prefiltered)
    k = calibration_k(k)
    if key not in _speedups:
        sizes = _PREFILTER_CALIBRATION if prefiltered else ()
        reference, queries = calibration_data(dim, *sizes)
        best = {"brute": np.inf, "faiss": np.inf}
        # built once, as a fitted classifier's index is, and searched repeatedly: what torch
        # brute force derives from the reference alone (see topk_neighbors' reference_cache)
        # is built by its first search, and the best time is of a search that reuses it
        backends = {
            "brute": _BruteSearch(metric).build(reference),
            "faiss": _FaissFlatSearch(metric).build(reference),
        }
        for _ in range(_CALIBRATION_REPEATS):  # interleaved: a slower spell hits both
            for name, backend in backends.items():
                start = time.perf_counter()
                backend.search(queries, k)
                best[name] = min(best[name], time.perf_counter() - start)
        _speedups[key] = best["brute"] / best["faiss"]
    return _speedups[key]


def faster_exact_backend(speedup: float) -> str:
    """``"faiss"`` where a calibration ``speedup`` clears :data:`AUTO_FAISS_MIN_SPEEDUP`."""
    return "faiss" if speedup >= AUTO_FAISS_MIN_SPEEDUP else "brute"
