"""Blockwise pairwise distances: the memory bound and the building blocks that losses,
miners, the retrieval metrics and the search share.

A loss or a miner reduces a batch's ``(n, n)`` distance matrix one block of rows at a time
(:class:`PairwiseBlocks`) and passes its gradient back the same way
(:class:`PairwiseGradient`), so that no ``(n, n)`` matrix is held. This is the one home of
those helpers; the public distance functions are in :mod:`sk_deepmetric.distances`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

# Chunk size bound (bytes) for temporaries: see STYLE.md, "hot paths are memory-bounded".
CHUNK_BYTES = 32 * 2**20
# Bytes of distances per block that losses and miners reduce at once, on a CPU (rows_per_block)
BLOCK_BYTES = 2**20
# PairwiseGradient.add_columns: above one weight per this many columns, a dense block is cheaper
DENSE_COLUMNS = 64


def squared_euclidean_rows(x: Tensor, sq_norms: Tensor, start: int, stop: int) -> Tensor:
    """Rows ``start:stop`` of ``squared_euclidean_distances(x)``, from ``sq_norms = |x|^2``."""
    sq = torch.addmm(
        sq_norms[start:stop, None] + sq_norms, x[start:stop], x.T, beta=1.0, alpha=-2.0
    ).clamp_min_(0.0)
    sq.diagonal(start).zero_()  # in place: clamp_min_'s backward needs only its output mask
    return sq


def measured_distances_(q: Tensor, neighbours: Tensor, distance: str, out: Tensor) -> Tensor:
    """Distances of each query of ``q`` ``(rows, d)`` to its gathered ``neighbours``
    ``(rows, k, d)``, measured from the vectors (not from the matrix-product form a search
    ranks by), into ``out`` ``(rows, k)``; ``neighbours`` is overwritten.

    ``|q - r|`` (squared for ``"squared_euclidean"``), and for ``"cosine"`` half the squared
    distance of the unit vectors, which is ``1 - cos``: never negative and 0 for a
    duplicate, where ``1 - q.r`` of the rounded unit vectors is a few float32 roundings off
    either way. A zero vector is at distance 1 exactly from everything, itself included
    (cosine similarity 0, as in :func:`sk_deepmetric.distances.cosine_similarity`).
    """
    if distance == "cosine":
        zeros = (~neighbours.any(dim=2)).logical_or_((~q.any(dim=1)).unsqueeze(1))
        unit = F.normalize(neighbours, dim=2, out=neighbours)
        diff = unit.sub_(F.normalize(q, dim=1).unsqueeze(1))
    else:
        diff = neighbours.sub_(q.unsqueeze(1))
    torch.sum(diff.mul_(diff), dim=2, out=out)
    if distance == "cosine":
        return out.masked_fill_(zeros, 2.0).mul_(0.5)  # 2 halved: 1
    return out.sqrt_() if distance == "euclidean" else out


def rows_per_chunk(n_columns: int, element_size: int = 4, n_temporaries: int = 1) -> int:
    """Rows such that ``n_temporaries`` arrays of ``(rows, n_columns)`` fit the 32 MiB bound.

    The one memory bound of every chunked computation (search, metrics, mining, losses).
    """
    return max(1, CHUNK_BYTES // (element_size * n_temporaries * max(1, n_columns)))


def rows_per_block(n_columns: int, element_size: int, device: torch.device) -> int:
    """Rows of the blocks of a distance matrix that losses and miners reduce one at a time.

    On a CPU a block holds ~1 MiB of distances, so that the several passes a miner or a loss
    makes over it read the cache rather than memory. An accelerator pays a kernel launch per
    block instead, and takes blocks up to the 32 MiB bound.
    """
    if device.type == "cpu":
        return max(1, BLOCK_BYTES // (element_size * max(1, n_columns)))
    return rows_per_chunk(n_columns, element_size, 4)


def translation(x: Tensor) -> Tensor:
    """The vector to subtract from ``x``'s rows before Euclidean distances are expanded as
    ``|a|^2 + |b|^2 - 2 a.b``, or zeros where that is not needed.

    The expansion's float32 rounding is relative to the squared norms: for rows far from the
    origin compared with their spread it swamps the distances (a common offset of 1,000 on
    a spread of 0.1 gave a contrastive loss of 2.18 instead of 0.61). Distances do not
    change under a translation, so where the mean's squared norm exceeds the mean squared
    distance of the rows from it, the rows are centred on the mean of a sample of them (every
    ``n // 4,096``-th), rounded to a multiple of a power of two between an eighth and a
    quarter of the spread per coordinate, so that exact data (integers) stay exact and equal
    distances equal. Tensor operations only: no wait for an accelerator. The vector is
    computed from ``x`` detached; being a constant, it changes no gradient.
    """
    if x.shape[0] == 0 or x.shape[1] == 0:
        return x.new_zeros(x.shape[1:])
    with torch.no_grad():
        sample = x.detach()[:: max(1, x.shape[0] // 4096)]
        center = sample.mean(dim=0)
        offset = center @ center
        spread = (sample - center).square_().sum(dim=1).mean()  # mean squared distance
        # 2^(floor(log2(s)) - 2) for the spread per coordinate s: in (s / 8, s / 4]
        scale = torch.exp2(torch.floor(torch.log2((spread / x.shape[1]).sqrt())) - 2.0)
        rounded = torch.where(spread > 0, torch.round(center / scale) * scale, sample[0])
        return torch.where(offset > spread, rounded, torch.zeros_like(center))  # NaN: zeros


def block_input(x: Tensor, distance: str, reference: Tensor | None = None) -> Tensor:
    """The vectors whose distances :class:`PairwiseBlocks` takes: unit-norm ``x`` for
    ``"cosine"``, ``x`` less its :func:`translation` for the Euclidean distances; then the
    rows of ``reference`` (references only), prepared the same way."""
    parts = [x] if reference is None else [x, reference]
    if distance == "cosine":
        parts = [F.normalize(part, dim=1) for part in parts]
    else:
        center = translation(x)
        parts = [part - center for part in parts]
    return parts[0] if reference is None else torch.cat(parts)


class PairwiseBlocks:
    """Row blocks of ``pairwise_distances(u, distance=distance)``, computed one at a time.

    ``u`` holds the vectors whose distances are taken: the embeddings, or for ``"cosine"`` the
    L2-normalised embeddings (``d_ij = 1 - u_i.u_j``, see :func:`block_input`). The first
    ``n_anchors`` rows (default: all) are the anchors whose rows a loss reduces; the others
    are references only (a cross-batch memory), met as positives and negatives.
    """

    def __init__(self, u: Tensor, distance: str, n_anchors: int | None = None) -> None:
        self.u, self.distance, self.n = u, distance, u.shape[0]
        self.n_anchors = self.n if n_anchors is None else n_anchors
        self.sq_norms = (u * u).sum(dim=1)

    def computable(self) -> bool:
        """Whether every distance is finite: no NaN or inf in ``u``, no overflowing norm.

        ``|u_i|^2 + |u_j|^2 - 2 u_i.u_j`` cannot overflow when every squared norm is below a
        quarter of the dtype's largest value; NaN and inf anywhere make a norm non-finite.
        """
        return bool((self.sq_norms <= torch.finfo(self.u.dtype).max / 4).all())  # NaN: False

    def rows_per_block(self) -> int:
        return rows_per_block(self.n, self.u.element_size(), self.u.device)

    def rows(self, start: int, stop: int) -> Tensor:
        """Rows ``start:stop`` of the distance matrix, as :func:`pairwise_distances` gives them."""
        if self.distance == "cosine":
            return 1.0 - self.u[start:stop] @ self.u.T
        sq = squared_euclidean_rows(self.u, self.sq_norms, start, stop)
        return sq.sqrt_() if self.distance == "euclidean" else sq


class PairwiseGradient:
    """The gradient wrt ``blocks.u`` of ``sum_ij W_ij d_ij``, given ``W`` block by block.

    A loss that reduces the distance matrix block by block passes on its gradient as the
    weights ``W_ij = dL/dd_ij`` of each block (:meth:`add_block`, :meth:`add_columns`); the
    gradient is accumulated at once, one matrix product each way per block, so no ``(n, n)``
    matrix is held and the distances are not computed a second time for the backward pass.
    """

    def __init__(self, blocks: PairwiseBlocks) -> None:
        self.u, self.distance, self.n = blocks.u, blocks.distance, blocks.n
        self.grad = torch.zeros_like(self.u)
        # the Euclidean kinds' gradient has a u_i * (row sum of weights) part, summed here
        euclidean = self.distance != "cosine"
        self._row_weights = self.u.new_zeros(self.n) if euclidean else None

    def _product_weights(self, w: Tensor, d: Tensor) -> Tensor:
        """Weights on the products ``u_i.u_j`` (up to sign) from weights ``w`` on distances ``d``.

        ``d(sqrt(s))/ds = 1 / (2d)`` and ``ds/du_i = 2 (u_i - u_j)``: the Euclidean weight is
        ``w / d``, zero where ``d`` is zero (as the distance's own gradient); in place on ``w``.
        """
        if self.distance == "euclidean":
            return w.div_(d).nan_to_num_(0.0, 0.0, 0.0)
        return w.mul_(2.0) if self.distance == "squared_euclidean" else w

    def add_block(self, start: int, w: Tensor, d: Tensor) -> None:
        """Add the gradient of ``sum(w * d)``, ``d`` rows ``start:`` of the distances.

        ``w`` is overwritten.
        """
        self._add_products(start, self._product_weights(w, d))

    def _add_products(self, start: int, c: Tensor) -> None:
        stop = start + c.shape[0]
        # d_ij depends on u_i and u_j: grad_i -= c_ij u_j (rows), grad_j -= c_ij u_i (columns)
        self.grad[start:stop].addmm_(c, self.u, alpha=-1.0)
        self.grad.addmm_(c.T, self.u[start:stop], alpha=-1.0)
        if self._row_weights is not None:
            self._row_weights[start:stop] += c.sum(dim=1)
            self._row_weights += c.sum(dim=0)

    def add_columns(self, start: int, cols: Tensor, w: Tensor, d: Tensor) -> None:
        """Add the gradient of ``sum_rs w[r, s] d[start + r, cols[r, s]]``.

        ``d`` holds those distances, shaped as ``cols``. A few columns per row are gathered
        and scattered; many go into a block of rows and :meth:`add_block`'s matrix products.
        """
        c = self._product_weights(w.clone(), d)
        if cols.shape[1] * DENSE_COLUMNS > self.n:
            block = c.new_zeros((cols.shape[0], self.n)).scatter_add_(1, cols, c)
            self._add_products(start, block)
            return
        r, s = torch.nonzero(c, as_tuple=True)
        i, j, c = r + start, cols[r, s], c[r, s].unsqueeze(1)
        if self.distance == "cosine":
            self.grad.index_add_(0, i, self.u[j] * c, alpha=-1.0)
            self.grad.index_add_(0, j, self.u[i] * c, alpha=-1.0)
            return
        diff = (self.u[i] - self.u[j]).mul_(c)
        self.grad.index_add_(0, i, diff)
        self.grad.index_add_(0, j, diff, alpha=-1.0)

    def result(self, scale: float = 1.0) -> Tensor:
        """``scale`` times the gradient of everything added so far."""
        grad = self.grad
        if self._row_weights is not None:
            grad = torch.addcmul(grad, self._row_weights.unsqueeze(1), self.u)
        return grad * scale
