"""Multi-similarity loss (Wang et al., 2019): mined pairs, weighted by a soft maximum.

The loss is a sum over anchors of two log-sum-exps over the anchor's row of the cosine
similarity matrix, so it is reduced block by block of anchor rows, like the tuple losses
(:func:`~sk_deepmetric.losses._blockwise.blockwise_loss`): each block is mined, turned into its
share of the value and of the gradient wrt the similarities, which goes back as weights
through the normalised embeddings. The ``(n, n)`` matrix is never held.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._blocks import PairwiseBlocks, PairwiseGradient
from .._devices import without_autocast
from .._mining import block_label_masks, multi_similarity_pairs
from .._validation import check_embeddings_and_labels, check_real
from ._blockwise import blocks_of, blockwise_loss, check_references

__all__ = ["MultiSimilarityLoss"]


def _log_one_plus_sum_exp(logits: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """Per row, ``log(1 + sum_{mask} exp(logits))`` and its gradient wrt ``logits``.

    The gradient is the softmax over the masked logits and a zero logit (the "1"): zero off
    the mask, and a row with an empty mask has value 0 and gradient 0.
    """
    f = logits.masked_fill(~mask, -torch.inf)
    lse = torch.logsumexp(F.pad(f, (0, 1)), dim=1)
    return lse, torch.exp(f - lse.unsqueeze(1))


def _multi_similarity(
    blocks: PairwiseBlocks,
    need_grad: bool,
    labels: Tensor,
    alpha: float,
    beta: float,
    base: float,
    epsilon: float | None,
) -> tuple[Tensor, Tensor | None]:
    """:class:`MultiSimilarityLoss` over the cosine blocks (``blocks.u`` is unit-norm)."""
    grad = PairwiseGradient(blocks) if need_grad else None
    total = torch.zeros((), dtype=torch.float64, device=blocks.u.device)
    for start, stop in blocks_of(blocks):
        s = blocks.u[start:stop] @ blocks.u.T
        positive, negative = block_label_masks(labels, start, stop)
        if epsilon is not None:
            positive, negative = multi_similarity_pairs(s, positive, negative, epsilon)
        pos_value, pos_w = _log_one_plus_sum_exp(-alpha * (s - base), positive)
        neg_value, neg_w = _log_one_plus_sum_exp(beta * (s - base), negative)
        total += (pos_value / alpha + neg_value / beta).sum(dtype=torch.float64)
        if need_grad:  # dL/ds = neg_w - pos_w, and the cosine distance is 1 - s
            grad.add_block(start, pos_w.sub_(neg_w), s)
    value = (total / blocks.n_anchors).to(blocks.u.dtype)
    return value, grad.result(1.0 / blocks.n_anchors) if need_grad else None


class MultiSimilarityLoss(nn.Module):
    """Multi-similarity loss with its pair mining (Wang et al., 2019).

    With ``S_ij`` the cosine similarity of samples ``i`` and ``j`` and, for each anchor ``i``,
    ``P_i`` and ``N_i`` its mined positive and negative pairs::

        loss = (1/n) sum_i [ (1/alpha) log(1 + sum_{k in P_i} exp(-alpha (S_ik - base)))
                           + (1/beta)  log(1 + sum_{k in N_i} exp( beta (S_ik - base))) ]

    the paper's eq. 11, averaged over all ``n`` samples of the batch (an anchor without
    pairs adds 0). Each term is a soft maximum: the gradient weights a pair by its own
    similarity and by its similarity relative to the anchor's other pairs, which is the
    paper's point. Mining (``epsilon``) keeps the pairs of
    :class:`~sk_deepmetric.miners.MultiSimilarityMiner`: negatives more similar than the
    anchor's least similar positive less ``epsilon``, positives less similar than its most
    similar negative plus ``epsilon``; it is piecewise constant and carries no gradient.

    The value is pytorch-metric-learning's ``MultiSimilarityLoss(alpha, beta, base)`` given
    the pairs of its ``MultiSimilarityMiner(epsilon)`` (or, with ``epsilon=None``, given no
    miner). The loss is reduced in blocks of anchors: memory ``O(n)`` per block row, no
    ``(n, n)`` matrix.

    Parameters
    ----------
    alpha : float, default=2.0
        Sharpness ``> 0`` of the soft maximum over positive pairs (the paper's 2).
    beta : float, default=50.0
        Sharpness ``> 0`` of the soft maximum over negative pairs (the paper's 50): a large
        value concentrates the push on the most similar negatives.
    base : float, default=0.5
        The similarity ``lambda`` that the exponents are measured from, in cosine units in
        ``[-1, 1]``: positives below it and negatives above it weigh most (the paper's 0.5).
    epsilon : float or None, default=0.1
        The mining slack, in cosine units, ``>= 0`` (the paper's 0.1); None uses every pair.

    References
    ----------
    .. [1] X. Wang, X. Han, W. Huang, D. Dong, M. R. Scott, "Multi-Similarity Loss with General
       Pair Weighting for Deep Metric Learning", CVPR 2019. https://arxiv.org/abs/1904.06627

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import MultiSimilarityLoss
    >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.6, 0.8]])
    >>> MultiSimilarityLoss()(x, torch.tensor([0, 0, 1, 1]))  # no pair near the ranking's edge
    tensor(0.)
    >>> MultiSimilarityLoss()(x, torch.tensor([0, 1, 0, 1]))
    tensor(0.8566)
    """

    def __init__(
        self,
        alpha: float = 2.0,
        beta: float = 50.0,
        base: float = 0.5,
        epsilon: float | None = 0.1,
    ) -> None:
        super().__init__()
        self.alpha = check_real(alpha, "alpha", min_value=0.0, closed="neither")
        self.beta = check_real(beta, "beta", min_value=0.0, closed="neither")
        self.base = check_real(base, "base", min_value=-1.0, max_value=1.0)
        if epsilon is not None:
            epsilon = check_real(epsilon, "epsilon", min_value=0.0)
        self.epsilon = epsilon

    @without_autocast
    def forward(
        self,
        embeddings: Tensor,
        labels: Tensor,
        ref_embeddings: Tensor | None = None,
        ref_labels: Tensor | None = None,
    ) -> Tensor:
        """Loss of a batch, its anchors meeting the batch and, if given, the references.

        Parameters
        ----------
        embeddings : Tensor of shape (n_samples, n_components)
        labels : Tensor of shape (n_samples,)
            Integer class labels.
        ref_embeddings : Tensor of shape (n_references, n_components), default=None
            Extra samples that every anchor of the batch also meets as a positive or a
            negative, e.g. a :class:`CrossBatchMemory`'s queue. They are never anchors and
            get no gradient. None: the batch alone.
        ref_labels : Tensor of shape (n_references,), default=None
            Their labels; given with ``ref_embeddings``.

        Returns
        -------
        Tensor of shape ()
        """
        embeddings, labels = check_embeddings_and_labels(embeddings, labels)
        reference, labels = check_references(embeddings, labels, ref_embeddings, ref_labels)
        reduce = partial(
            _multi_similarity,
            labels=labels,
            alpha=self.alpha,
            beta=self.beta,
            base=self.base,
            epsilon=self.epsilon,
        )
        return blockwise_loss(embeddings, "cosine", reduce, reference)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, beta={self.beta}, base={self.base}, epsilon={self.epsilon}"
