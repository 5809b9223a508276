"""Center loss: softmax plus a pull of each embedding towards its class's learnable centre."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sk_deepmetric._devices import without_autocast
from sk_deepmetric._validation import check_real
from sk_deepmetric.losses._margin_softmax import SoftmaxLoss, check_classifier_inputs

__all__ = ["CenterLoss"]


class CenterLoss(nn.Module):
    """Softmax cross-entropy plus ``center_weight`` times the mean squared distance to centres.

    ``loss = softmax(x, y) + center_weight * mean_i 0.5 * ||x_i - c_{y_i}||^2``

    The softmax term (a :class:`SoftmaxLoss`, linear classifier with bias) keeps classes
    separable; the centre term makes each class compact around its centre ``c_y``.

    Unlike Wen et al., who update the centres by a separate rule (the mean offset of the
    class's samples in the batch, with rate ``alpha``), here the centres are an ordinary
    ``nn.Parameter`` trained by the optimiser; the gradient on ``c_j`` is ``center_weight``
    times the sum of ``c_j - x_i`` over the batch's samples of class ``j``, divided by the
    batch size. With a small ``center_weight``
    the centres therefore move slowly; give them their own, larger learning rate through a
    parameter group if they lag behind the embeddings.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.
    center_weight : float, default=0.003
        ``lambda >= 0``, the weight of the centre term (the paper's face experiments use
        0.003); both terms are means over the batch, so the ratio is the paper's.

    Attributes
    ----------
    softmax : SoftmaxLoss
        The classifier term, with ``softmax.weight`` (n_classes, n_components) and
        ``softmax.bias`` (n_classes,).
    centers : nn.Parameter of shape (n_classes, n_components)

    References
    ----------
    .. [1] Y. Wen, K. Zhang, Z. Li and Y. Qiao, "A Discriminative Feature Learning Approach
       for Deep Face Recognition", ECCV 2016.
       https://doi.org/10.1007/978-3-319-46478-7_31

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import CenterLoss
    >>> loss = CenterLoss(n_classes=3, n_components=4, center_weight=0.1)
    >>> loss.reset_parameters(torch.Generator().manual_seed(0))
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> y = torch.tensor([0, 0, 1, 1, 2, 2])
    >>> bool(loss(x, y) > loss.softmax(x, y))
    True
    """

    #: The softmax keeps its weights' norms (they scale the logits).
    normalizes_class_weights = False

    def __init__(self, n_classes: int, n_components: int, center_weight: float = 0.003) -> None:
        super().__init__()
        self.softmax = SoftmaxLoss(n_classes, n_components)
        self.n_classes = self.softmax.n_classes
        self.n_components = self.softmax.n_components
        self.center_weight = check_real(center_weight, "center_weight", min_value=0.0)
        self.centers = nn.Parameter(torch.empty(self.n_classes, self.n_components))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """(Re)initialise the classifier as ``nn.Linear`` and the centres Xavier-uniform.

        Parameters
        ----------
        generator : torch.Generator, default=None
            The only source of randomness used; ``None`` uses torch's global generator.
        """
        self.softmax.reset_parameters(generator)
        # Xavier, as the centre filler of the authors' Caffe models
        nn.init.xavier_uniform_(self.centers, generator=generator)

    @torch.no_grad()
    def imprint_(
        self, class_means: Tensor, center: Tensor | None = None, norm: float | None = None
    ) -> CenterLoss:
        """Start the classifier at the class means ("imprinting") and each centre at its
        class's mean.

        The classifier's weights are imprinted as :meth:`SoftmaxLoss.imprint_
        <sk_deepmetric.losses.SoftmaxLoss.imprint_>` does (``center`` and ``norm`` apply
        to them); the centres take the means themselves, not centred. A row of
        ``class_means`` that is not finite (a class without samples yet) leaves that
        class's weight direction and centre as they are.

        Parameters
        ----------
        class_means : Tensor of shape (n_classes, n_components)
        center : Tensor of shape (n_components,), default=None
        norm : float, default=None

        Returns
        -------
        self
        """
        self.softmax.imprint_(class_means, center, norm)
        present = torch.isfinite(class_means).all(dim=1)
        self.centers[present] = class_means[present].to(self.centers)
        return self

    def logits(self, embeddings: Tensor) -> Tensor:
        """Class scores of the softmax classifier, shape ``(batch_size, n_classes)``."""
        return self.softmax.logits(embeddings)

    @without_autocast
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """Mean softmax cross-entropy plus the weighted mean centre term.

        Parameters
        ----------
        embeddings : Tensor of shape (batch_size, n_components)
        labels : Tensor of shape (batch_size,)
            Integer class indices in ``0 .. n_classes - 1``.

        Returns
        -------
        Tensor of shape ()
        """
        embeddings, labels = check_classifier_inputs(self, embeddings, labels)
        softmax = self.softmax(embeddings, labels)
        if labels.numel() == 0:
            return softmax + self.centers.sum() * 0.0
        offsets = embeddings - self.centers[labels]
        center = 0.5 * (offsets * offsets).sum(dim=1).mean()
        return softmax + self.center_weight * center

    def extra_repr(self) -> str:
        return (
            f"n_classes={self.n_classes}, n_components={self.n_components}, "
            f"center_weight={self.center_weight!r}"
        )
