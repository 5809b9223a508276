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


def zero_like_loss(x: Tensor) -> Tensor:
    """A zero loss still connected to the graph, so ``backward`` gives zero gradients."""
    return x.sum() * 0.0


def nan_loss(x: Tensor) -> Tensor:
    """A NaN loss still connected to the graph (NaN or inf embeddings): NaN gradients too."""
    return x.sum() * math.nan


class BlockwiseLoss(torch.autograd.Function):
    """A loss reduced block by block over the distances of ``u``, its gradient computed alongside.

    ``reduce(blocks, need_grad) -> (value, gradient wrt u or None)``, with ``blocks`` a
    :class:`~sk_deepmetric._blocks.PairwiseBlocks` of ``u``. The gradient comes from the same
    passes over the distances as the value: backward only scales it. First-order gradients are
    exact; there is no double backward.
    """

    @staticmethod
    def forward(ctx, u: Tensor, distance: str, reduce: Callable) -> Tensor:
        value, grad = _reduce(u.detach(), distance, reduce, need_grad=True)
        ctx.save_for_backward(grad)
        return value

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_output: Tensor) -> tuple[Tensor, None, None]:
        (grad,) = ctx.saved_tensors
        return grad_output * grad, None, None


def blockwise_loss(embeddings: Tensor, distance: str, reduce: Callable) -> Tensor:
    """``reduce`` over the distance blocks of ``embeddings``, differentiable when it needs be.

    Embeddings with NaN or inf (or norms so large that distances overflow) give a NaN loss
    with NaN gradients, from one check of their norms: no pass over the distances.
    """
    u = block_input(embeddings, distance)
    if torch.is_grad_enabled() and u.requires_grad:
        return BlockwiseLoss.apply(u, distance, reduce)
    return _reduce(u, distance, reduce, need_grad=False)[0]


def _reduce(u: Tensor, distance: str, reduce: Callable, need_grad: bool):
    blocks = PairwiseBlocks(u, distance)
    if not blocks.computable():
        return u.new_full((), math.nan), torch.full_like(u, math.nan) if need_grad else None
    if blocks.n == 0:
        return u.new_zeros(()), torch.zeros_like(u) if need_grad else None
    return reduce(blocks, need_grad)


def no_loss(blocks: PairwiseBlocks, need_grad: bool) -> tuple[Tensor, Tensor | None]:
    return blocks.u.new_zeros(()), torch.zeros_like(blocks.u) if need_grad else None


def blocks_of(blocks: PairwiseBlocks):
    """``(start, stop)`` of each block of anchors."""
    rows = blocks.rows_per_block()
    return [(start, min(blocks.n, start + rows)) for start in range(0, blocks.n, rows)]


def mean_nonzero(losses: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``losses`` over the entries of ``mask`` where it is positive (pml's reducer)."""
    active = mask & (losses > 0)
    n_active = int(active.sum())
    if n_active == 0:
        return zero_like_loss(losses)
    return torch.where(active, losses, 0.0).sum() / n_active
