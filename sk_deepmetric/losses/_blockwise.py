"""The steps that the tuple losses share: reduce a batch's distance matrix block by block of
anchors, with the gradient computed alongside the value, and the reducers' small helpers.

Each block's share of the value comes with its share of the gradient, passed on as weights on
the block's distances and accumulated as a matrix product
(:class:`~sk_deepmetric._blocks.PairwiseGradient`), so neither the ``(n, n)`` matrix nor any
tuple list is held, and the backward pass only scales the gradient computed with the value.
This is the one home of those steps; the losses are in :mod:`sk_deepmetric.losses`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

from .._blocks import PairwiseBlocks, block_input
from .._validation import check_embeddings_and_labels


def zero_like_loss(x: Tensor) -> Tensor:
    """A zero loss still connected to the graph, so ``backward`` gives zero gradients."""
    return x.sum() * 0.0


def nan_loss(x: Tensor) -> Tensor:
    """A NaN loss still connected to the graph (NaN or inf embeddings): NaN gradients too."""
    return x.sum() * math.nan


class BlockwiseLoss(torch.autograd.Function):
    """A loss reduced block by block over the distances of ``u``, its gradient computed alongside.

    ``reduce(blocks, need_grad) -> (value, gradient wrt u or None)``, with ``blocks`` a
    :class:`~sk_deepmetric._blocks.PairwiseBlocks` of ``u`` whose first ``n_anchors`` rows are
    the anchors. The gradient comes from the same passes over the distances as the value:
    backward only scales it. First-order gradients are exact; there is no double backward.
    """

    @staticmethod
    def forward(ctx, u: Tensor, distance: str, reduce: Callable, n_anchors: int) -> Tensor:
        value, grad = _reduce(u.detach(), distance, reduce, True, n_anchors)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None, None]:
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None, None


def blockwise_loss(
    embeddings: Tensor, distance: str, reduce: Callable, reference: Tensor | None = None
) -> Tensor:
    """``reduce`` over the distance blocks of ``embeddings``, differentiable when it needs be.

    With ``reference`` (checked by :func:`check_references`), its rows follow the
    embeddings' as references only: never anchors, and constants (no gradient reaches them).
    Embeddings with NaN or inf (or norms so large that distances overflow) give a NaN loss
    with NaN gradients, from one check of their norms: no pass over the distances.
    """
    n_anchors = embeddings.shape[0]
    u = block_input(embeddings, distance, None if reference is None else reference.detach())
    if torch.is_grad_enabled() and u.requires_grad:
        return BlockwiseLoss.apply(u, distance, reduce, n_anchors)
    return _reduce(u, distance, reduce, False, n_anchors)[0]


def _reduce(u: Tensor, distance: str, reduce: Callable, need_grad: bool, n_anchors: int):
    blocks = PairwiseBlocks(u, distance, n_anchors)
    if not blocks.computable():
        return u.new_full((), math.nan), torch.full_like(u, math.nan) if need_grad else None
    if n_anchors == 0:
        return u.new_zeros(()), torch.zeros_like(u) if need_grad else None
    return reduce(blocks, need_grad)


def no_loss(blocks: PairwiseBlocks, need_grad: bool) -> tuple[Tensor, Tensor | None]:
    return blocks.u.new_zeros(()), torch.zeros_like(blocks.u) if need_grad else None


def blocks_of(blocks: PairwiseBlocks):
    """``(start, stop)`` of each block of anchors."""
    rows, n = blocks.rows_per_block(), blocks.n_anchors
    return [(start, min(n, start + rows)) for start in range(0, n, rows)]


def check_references(
    embeddings: Tensor, labels: Tensor, ref_embeddings: Tensor | None, ref_labels: Tensor | None
) -> tuple[Tensor | None, Tensor]:
    """Checked references of a tuple loss and the labels of anchors and references together.

    ``ref_embeddings`` and ``ref_labels`` are given together or not at all; they must match
    the embeddings' columns and device, and are cast to their dtype.
    """
    if ref_embeddings is None and ref_labels is None:
        return None, labels
    if ref_embeddings is None or ref_labels is None:
        given = "ref_labels" if ref_embeddings is None else "ref_embeddings"
        raise ValueError(f"`ref_embeddings` and `ref_labels` go together: got `{given}` alone.")
    ref_embeddings, ref_labels = check_embeddings_and_labels(
        ref_embeddings, ref_labels, names=("ref_embeddings", "ref_labels")
    )
    if ref_embeddings.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"`ref_embeddings` must have as many columns as `embeddings` "
            f"({embeddings.shape[1]}), got {ref_embeddings.shape[1]}."
        )
    if ref_embeddings.device != embeddings.device:
        raise ValueError(
            f"`ref_embeddings` must be on the embeddings' device ({embeddings.device}), got "
            f"{ref_embeddings.device}."
        )
    # in a type that holds both: uint8 batch labels would wrap reference class 256 to 0
    common = torch.promote_types(labels.dtype, ref_labels.dtype)
    labels = torch.cat([labels.to(common), ref_labels.to(common)])
    return ref_embeddings.to(embeddings.dtype), labels


def mean_nonzero(losses: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``losses`` over the entries of ``mask`` where it is positive (pml's reducer)."""
    active = mask & (losses > 0)
    n_active = int(active.sum())
    if n_active == 0:
        return zero_like_loss(losses)
    return torch.where(active, losses, 0.0).sum() / n_active
