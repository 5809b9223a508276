"""Sub-centre ArcFace (Deng et al., 2020): ArcFace with several weight vectors per class.

A member of the softmax family (:mod:`._margin_softmax`): the class's cosine is the largest
cosine to any of its sub-centres, and the rest is ArcFace's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._devices import without_autocast
from .._validation import check_int
from ._margin_softmax import ArcFaceLoss, check_classifier_inputs

__all__ = ["SubCenterArcFaceLoss"]


class SubCenterArcFaceLoss(ArcFaceLoss):
    """Sub-centre ArcFace: ``sub_centers`` weight vectors per class, the nearest one counts.

    Class weights and embeddings are normalised; the cosine of the embedding to class ``j``
    is ``cos(theta_j) = max_k cos(x, W_jk)`` over the class's ``K = sub_centers``
    sub-centres, and the loss is :class:`ArcFaceLoss` on these cosines: logits
    ``scale * cos(theta_j)``, the target's ``scale * cos(theta_y + margin)`` (with ArcFace's
    fallback where ``theta_y + margin >= pi``). A class's samples may gather around any of
    its sub-centres, so that noisy or atypical samples form their own sub-class rather than
    pull the dominant one; with ``sub_centers=1`` this is ArcFace.

    The paper's second stage, which after training drops the samples farther than 75 degrees
    from their class's dominant sub-centre and retrains with one centre per class, is not
    part of the loss (pytorch-metric-learning's ``get_outliers`` does it); the sub-centres'
    cosines are available from :meth:`sub_center_cosines` for it.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.
    margin : float, default=0.5
        Added to the target angle, in radians, in ``[0, pi/2)``; pytorch-metric-learning's
        ``margin`` is in degrees.
    scale : float, default=64.0
        Radius ``s > 0`` of the hypersphere the embeddings are projected onto.
    sub_centers : int, default=3
        ``K >= 1`` sub-centres per class (the paper's 3); a float is an error.

    Attributes
    ----------
    weight : nn.Parameter of shape (n_classes * sub_centers, n_components)
        Row ``j * sub_centers + k`` is sub-centre ``k`` of class ``j``.

    Notes
    -----
    Same definition as pytorch-metric-learning's ``SubCenterArcFaceLoss`` with
    ``margin=degrees(margin)`` (weights transposed, in the same order), wherever the target
    angle satisfies ``theta_y + margin < pi``; beyond, pml's ``cos(theta_y + margin)``
    rises again and this loss takes ArcFace's fallback, as :class:`ArcFaceLoss` does.

    References
    ----------
    .. [1] J. Deng, J. Guo, T. Liu, M. Gong, S. Zafeiriou, "Sub-center ArcFace: Boosting Face
       Recognition by Large-Scale Noisy Web Faces", ECCV 2020.
       https://www.ecva.net/papers/eccv_2020/papers_ECCV/papers/123560715.pdf

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import SubCenterArcFaceLoss
    >>> loss = SubCenterArcFaceLoss(n_classes=3, n_components=4, sub_centers=2)
    >>> loss.weight.shape
    torch.Size([6, 4])
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> loss.logits(x).shape, loss.sub_center_cosines(x).shape
    (torch.Size([6, 3]), torch.Size([6, 3, 2]))
    """

    _hyperparameter_names = ("margin", "scale", "sub_centers")

    def __init__(
        self,
        n_classes: int,
        n_components: int,
        margin: float = 0.5,
        scale: float = 64.0,
        sub_centers: int = 3,
    ) -> None:
        sub_centers = check_int(sub_centers, "sub_centers", min_value=1)
        super().__init__(n_classes, n_components, margin=margin, scale=scale)
        self.sub_centers = sub_centers
        self.weight = nn.Parameter(torch.empty(self.n_classes * sub_centers, self.n_components))
        self.reset_parameters()

    def sub_center_cosines(self, embeddings: Tensor) -> Tensor:
        """Cosines of the embeddings to every sub-centre.

        Parameters
        ----------
        embeddings : Tensor of shape (batch_size, n_components)

        Returns
        -------
        Tensor of shape (batch_size, n_classes, sub_centers)
        """
        embeddings, _ = check_classifier_inputs(self, embeddings)
        return self._sub_center_cosines(embeddings)

    def _sub_center_cosines(self, embeddings: Tensor) -> Tensor:
        cos = F.linear(F.normalize(embeddings, dim=1), F.normalize(self.weight, dim=1))
        return cos.view(-1, self.n_classes, self.sub_centers)

    def _scores(self, embeddings: Tensor) -> Tensor:
        return self.scale * self._sub_center_cosines(embeddings).amax(dim=2)

    @without_autocast
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Mean cross-entropy over the batch, with the margin on each target class.

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
        # one (batch, classes, sub-centres) product: the target's cosine is its class's best;
        # max's backward scatters through the indices, amax's builds a mask of the whole
        best = self._sub_center_cosines(embeddings).max(dim=2).values
        if labels.numel() == 0:
            return best.sum() * 0.0
        target = self._target_cosine(best.gather(1, labels[:, None]).squeeze(1))
        logits = self.scale * best.scatter(1, labels[:, None], target[:, None])
        return F.cross_entropy(logits, labels)
