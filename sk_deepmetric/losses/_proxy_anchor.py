"""Proxy-Anchor loss (Kim et al., 2020): one learnable proxy per class, used as the anchor.

Each proxy is compared with every embedding of the batch by cosine similarity, an
``(n_samples, n_classes)`` matrix, as the softmax family's logits are; the loss owns its
proxies (``nn.Parameter``), so an optimiser given ``loss.parameters()`` trains them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._devices import without_autocast
from .._validation import check_int, check_real
from ._margin_softmax import check_classifier_inputs, imprinted

__all__ = ["ProxyAnchorLoss"]


def _log_one_plus_sum_exp_columns(logits: Tensor, mask: Tensor) -> Tensor:
    """Per column, ``log(1 + sum_{mask} exp(logits))``: 0 for a column with an empty mask."""
    f = logits.masked_fill(~mask, -torch.inf)
    return torch.logsumexp(F.pad(f, (0, 0, 0, 1)), dim=0)


class ProxyAnchorLoss(nn.Module):
    """Proxy-Anchor loss (Kim et al., 2020).

    With ``s(x, p)`` the cosine similarity of embedding ``x`` and proxy ``p``, ``P`` all
    proxies (one per class), ``P+`` the proxies of the classes present in the batch, and
    ``X_p+`` (``X_p-``) the batch's embeddings of (not of) proxy ``p``'s class::

        loss = (1/|P+|) sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (s(x, p) - margin)))
             + (1/|P|)  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (s(x, p) + margin)))

    the paper's eq. 4. Each proxy is an anchor that weighs every embedding of the batch by
    its relative hardness (a soft maximum), so the gradient of one embedding depends on the
    others, as in pair losses, while the proxies make it converge as fast as a classifier.
    A batch without samples gives a zero loss.

    Same definition as pytorch-metric-learning's ``ProxyAnchorLoss`` (whose proxies are
    ``proxies`` too). The paper trains the proxies with a learning rate 100 times the
    network's; :class:`~sk_deepmetric.ProxyAnchorEmbedder` does so with
    ``proxy_lr_multiplier``, and a hand-written loop gives ``loss.parameters()`` their own
    parameter group.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.
    margin : float, default=0.1
        The margin ``delta`` in cosine units, in ``[0, 1)`` (the paper's 0.1): positives are
        pulled until their similarity to their proxy exceeds it, negatives pushed below
        ``-margin``.
    alpha : float, default=32.0
        The scale ``alpha > 0`` of the soft maximum (the paper's 32): larger values weigh the
        hardest embeddings of each proxy more.

    Attributes
    ----------
    proxies : nn.Parameter of shape (n_classes, n_components)
        Normalised to unit rows when used; the stored norm is irrelevant (except to the
        optimiser's step, which is relative to it).

    References
    ----------
    .. [1] S. Kim, D. Kim, M. Cho, S. Kwak, "Proxy Anchor Loss for Deep Metric Learning",
       CVPR 2020. https://arxiv.org/abs/2003.13911

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import ProxyAnchorLoss
    >>> loss = ProxyAnchorLoss(n_classes=3, n_components=4)
    >>> loss.reset_parameters(torch.Generator().manual_seed(0))
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> loss(x, torch.tensor([0, 0, 1, 1, 2, 2])).ndim
    0
    >>> loss.logits(x).shape
    torch.Size([6, 3])
    """

    #: The loss uses the proxies' directions only (cosine similarities).
    normalizes_class_weights = True

    def __init__(
        self, n_classes: int, n_components: int, margin: float = 0.1, alpha: float = 32.0
    ) -> None:
        super().__init__()
        self.n_classes = check_int(n_classes, "n_classes", min_value=2)
        self.n_components = check_int(n_components, "n_components", min_value=1)
        margin = check_real(margin, "margin")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"`margin` is in cosine units and must be in [0, 1), got {margin!r}.")
        self.margin = margin
        self.alpha = check_real(alpha, "alpha", min_value=0.0, closed="neither")
        self.proxies = nn.Parameter(torch.empty(self.n_classes, self.n_components))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """(Re)initialise the proxies as the paper does: Kaiming-normal, ``mode="fan_out"``.

        Parameters
        ----------
        generator : torch.Generator, default=None
            The only source of randomness used; ``None`` uses torch's global generator.
        """
        nn.init.kaiming_normal_(self.proxies, mode="fan_out", generator=generator)

    @torch.no_grad()
    def imprint_(
        self, class_means: Tensor, center: Tensor | None = None, norm: float | None = None
    ) -> ProxyAnchorLoss:
        """Start each proxy at the direction of its class's mean embedding ("imprinting").

        As :meth:`SoftmaxLoss.imprint_ <sk_deepmetric.losses.SoftmaxLoss.imprint_>` does
        for class weights; the paper starts the proxies at random instead.

        Parameters
        ----------
        class_means : Tensor of shape (n_classes, n_components)
            Mean embedding of each class; a row that is not finite keeps its proxy's
            direction.
        center : Tensor of shape (n_components,), default=None
            Subtracted from every mean before its direction is taken.
        norm : float, default=None
            Norm of every proxy afterwards (the loss divides it out; it sets how far an
            optimiser step turns a proxy). None keeps their current mean norm.

        Returns
        -------
        self
        """
        self.proxies.copy_(imprinted(self.proxies, self.n_classes, class_means, center, norm))
        return self

    def logits(self, embeddings: Tensor) -> Tensor:
        """Cosine similarities of the embeddings to the proxies, for prediction or inspection.

        Parameters
        ----------
        embeddings : Tensor of shape (batch_size, n_components)

        Returns
        -------
        Tensor of shape (batch_size, n_classes)
        """
        embeddings, _ = check_classifier_inputs(self, embeddings)
        return self._cosines(embeddings)

    def _cosines(self, embeddings: Tensor) -> Tensor:
        return F.linear(F.normalize(embeddings, dim=1), F.normalize(self.proxies, dim=1))

    @without_autocast
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Loss of a batch.

        Parameters
        ----------
        embeddings : Tensor of shape (batch_size, n_components)
        labels : Tensor of shape (batch_size,)
            Integer class indices in ``0 .. n_classes - 1``.

        Returns
        -------
        Tensor of shape ()
            Zero (still attached to the graph) for an empty batch.
        """
        embeddings, labels = check_classifier_inputs(self, embeddings, labels)
        cos = self._cosines(embeddings)
        if labels.numel() == 0:
            return cos.sum() * 0.0
        positive = F.one_hot(labels, self.n_classes).bool()
        pos = _log_one_plus_sum_exp_columns(-self.alpha * (cos - self.margin), positive)
        neg = _log_one_plus_sum_exp_columns(self.alpha * (cos + self.margin), ~positive)
        n_present = int(positive.any(dim=0).sum())
        return pos.sum() / n_present + neg.sum() / self.n_classes

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, n_components={self.n_components}, "
            f"margin={self.margin!r}, alpha={self.alpha!r}"
        )
