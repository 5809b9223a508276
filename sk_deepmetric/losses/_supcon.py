"""Supervised contrastive loss (Khosla et al., 2020): a softmax over each anchor's batch.

Each anchor's term is a log-sum-exp over its row of the cosine similarity matrix, so the loss
is reduced block by block of anchor rows, like the tuple losses
(:func:`~sk_deepmetric.losses._blockwise.blockwise_loss`): value and gradient wrt the similarities
come from one pass over each block, and the ``(n, n)`` matrix is never held.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import Tensor, nn

from .._blocks import PairwiseBlocks, PairwiseGradient
from .._devices import without_autocast
from .._mining import block_label_masks
from .._validation import check_embeddings_and_labels, check_real
from ._blockwise import blocks_of, blockwise_loss, check_references, no_loss

__all__ = ["SupConLoss"]


def _supcon(
    blocks: PairwiseBlocks, need_grad: bool, labels: Tensor, temperature: float
) -> tuple[Tensor, Tensor | None]:
    """:class:`SupConLoss` over the cosine blocks (``blocks.u`` is unit-norm)."""
    if torch.unique(labels).numel() < 2:  # no negative: nothing to contrast
        return no_loss(blocks, need_grad)
    grad = PairwiseGradient(blocks) if need_grad else None
    total = torch.zeros((), dtype=torch.float64, device=blocks.u.device)
    count = 0
    for start, stop in blocks_of(blocks):
        z = (blocks.u[start:stop] @ blocks.u.T) / temperature
        positive, negative = block_label_masks(labels, start, stop)
        n_positive = positive.sum(dim=1)
        anchor = n_positive > 0
        lse = torch.logsumexp(z.masked_fill(~(positive | negative), -torch.inf), dim=1)
        per_positive = positive / n_positive.clamp_min(1).unsqueeze(1).to(z.dtype)
        losses = lse - (per_positive * z).sum(dim=1)
        total += losses[anchor].sum(dtype=torch.float64)
        count += int(anchor.sum())
        if need_grad:  # dL/dz = softmax - positives / |P|, and the cosine distance is 1 - s
            w = torch.exp(z - lse.unsqueeze(1)).masked_fill_(~negative & ~positive, 0.0)
            w = (per_positive - w).masked_fill_(~anchor.unsqueeze(1), 0.0)
            grad.add_block(start, w.div_(temperature), z)
    if count == 0:
        return no_loss(blocks, need_grad)
    value = (total / count).to(blocks.u.dtype)
    return value, grad.result(1.0 / count) if need_grad else None


class SupConLoss(nn.Module):
    """Supervised contrastive loss (SupCon, Khosla et al., 2020).

    With ``s_ij`` the cosine similarity of samples ``i`` and ``j``, ``P(i)`` the other
    samples of ``i``'s class and ``A(i)`` every sample but ``i``::

        loss_i = -(1/|P(i)|) sum_{p in P(i)} log(exp(s_ip / t) / sum_{a in A(i)} exp(s_ia / t))

    the paper's ``L^sup_out`` (eq. 2), averaged over the anchors that have a positive; a
    batch with a single class has no negative, and gives a zero loss. Every positive is
    pulled and every other sample pushed with the weight of its softmax probability, so the
    loss mines hard negatives by itself, through the temperature: the smaller ``t``, the
    more the largest similarities dominate.

    The value is pytorch-metric-learning's ``SupConLoss(temperature)`` whenever no anchor's
    loss rounds to exactly zero (pml's ``AvgNonZeroReducer`` leaves such anchors out of the
    mean; in exact arithmetic an anchor with a positive and a negative never has a zero
    loss). The loss is reduced in blocks of anchors: memory ``O(n)`` per block row, no
    ``(n, n)`` matrix.

    Parameters
    ----------
    temperature : float, default=0.1
        The temperature ``t > 0`` that divides the cosine similarities (the paper's 0.1); a
        lower one concentrates the gradient on the hardest pairs.

    References
    ----------
    .. [1] P. Khosla, P. Teterwak, C. Wang, A. Sarna, Y. Tian, P. Isola, A. Maschinot, C. Liu,
       D. Krishnan, "Supervised Contrastive Learning", NeurIPS 2020.
       https://arxiv.org/abs/2004.11362

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import SupConLoss
    >>> x = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.6, 0.8]])
    >>> SupConLoss(temperature=0.1)(x, torch.tensor([0, 0, 1, 1]))
    tensor(0.1094)
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_real(temperature, "temperature", min_value=0.0, closed="neither")

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
        reduce = partial(_supcon, labels=labels, temperature=self.temperature)
        return blockwise_loss(embeddings, "cosine", reduce, reference)

    def extra_repr(self) -> str:
        return f"temperature={self.temperature}"
