"""The softmax family: softmax, L-Softmax, SphereFace (A-Softmax), CosFace, ArcFace.

Every member is a softmax cross-entropy over class scores ``r * cos(theta_j)``, where
``theta_j`` is the angle between the embedding and the class weight ``W_j``, and ``r`` the
product of the norms that are kept (``||W_j|| ||x||`` for softmax and L-Softmax, ``||x||``
for SphereFace, the fixed radius ``scale`` for CosFace and ArcFace). The members differ only
in which norms are kept and in how the target class's cosine is turned into its logit, so one
base class holds the computation and each loss sets a few flags and one hook,
``_target_cosine``.

The losses own their class weights (``nn.Parameter``), so an optimiser given
``loss.parameters()`` trains them together with the network.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sk_deepmetric._devices import without_autocast
from sk_deepmetric._validation import (
    check_class_labels,
    check_embeddings_and_labels,
    check_int,
    check_real,
)

__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "LargeMarginSoftmaxLoss",
    "SoftmaxLoss",
    "SphereFaceLoss",
]


def check_classifier_inputs(
    module: nn.Module, embeddings: Tensor, labels: Tensor | None = None
) -> tuple[Tensor, Tensor | None]:
    """Check a batch against a classifier-style loss's ``n_components``, dtype and classes.

    ``labels=None`` checks the embeddings alone (for ``logits``). Shared with ``CenterLoss``.
    """
    if labels is None:
        n = len(embeddings) if isinstance(embeddings, Tensor) and embeddings.ndim else 0
        labels_given, labels = False, torch.zeros(n, dtype=torch.long)
    else:
        labels_given = True
    embeddings, labels = check_embeddings_and_labels(embeddings, labels)
    if embeddings.shape[1] != module.n_components:
        raise ValueError(
            f"`embeddings` must have `n_components`={module.n_components} columns, got "
            f"{embeddings.shape[1]}."
        )
    dtype = next(module.parameters()).dtype
    if dtype in (torch.float16, torch.bfloat16):
        raise ValueError(
            f"The loss's parameters are {dtype}: losses compute in float32 (half-precision "
            "embeddings are promoted to it); keep the loss in float32 with `loss.float()`."
        )
    if embeddings.dtype != dtype:
        raise ValueError(
            f"`embeddings` dtype {embeddings.dtype} does not match the loss's parameters "
            f"({dtype}); move the loss with `loss.to({embeddings.dtype})`."
        )
    if not labels_given:
        return embeddings, None
    check_class_labels(labels, module.n_classes)
    return embeddings, labels.long()


def imprinted(
    weight: Tensor,
    n_classes: int,
    class_means: Tensor,
    center: Tensor | None,
    norm: float | None,
) -> Tensor:
    """Class weights that start at the (centred) class means' directions: the one home of
    ``imprint_``'s arithmetic, shared by every loss with class weights.

    ``weight`` holds ``n_classes`` groups of rows in order (one row per class, or
    ``sub_centers`` rows per class); each class's first row gets its mean's direction and
    the others keep theirs, all at ``norm`` (None: the rows' mean norm). A class whose mean
    is not finite (no samples yet), or at ``center`` (no direction: a warning), keeps its
    direction.
    """
    d = weight.shape[1]
    if not isinstance(class_means, Tensor) or class_means.shape != (n_classes, d):
        shape = tuple(class_means.shape) if isinstance(class_means, Tensor) else "not a tensor"
        raise ValueError(
            f"`class_means` must be a tensor of shape (n_classes, n_components) = "
            f"({n_classes}, {d}), got {shape}."
        )
    if center is not None and (not isinstance(center, Tensor) or center.shape != (d,)):
        shape = tuple(center.shape) if isinstance(center, Tensor) else "not a tensor"
        raise ValueError(f"`center` must be a tensor of shape ({d},) or None, got {shape}.")
    if norm is None:
        norm = weight.norm(dim=1, keepdim=True).mean()
    elif isinstance(norm, bool) or not isinstance(norm, (int, float)) or not 0 < norm < math.inf:
        raise ValueError(f"`norm` must be a positive finite number or None, got {norm!r}.")
    present = torch.isfinite(class_means).all(dim=1)
    means = class_means if center is None else class_means - center
    # a mean at the centre (embeddings that are all alike) has no direction to take
    degenerate = present & (means == 0).all(dim=1)
    if degenerate.any():
        warnings.warn(
            f"{int(degenerate.sum())} of {n_classes} class means equal `center` (or are zero "
            "without one): their classes keep their current directions. Are the embeddings "
            "all alike (an untrained or constant network)?",
            UserWarning,
            stacklevel=3,
        )
    present &= ~degenerate
    direction = F.normalize(weight.detach().clone().view(n_classes, -1, d), dim=2)
    direction[present, 0] = F.normalize(means[present], dim=1).to(weight)
    return (direction * norm).view_as(weight)


def cos_multiple_angle(cosine: Tensor, m: int) -> Tensor:
    """``cos(m theta)`` as the Chebyshev polynomial ``T_m(cos theta)``.

    A polynomial in the cosine has finite gradients everywhere, including at ``|cos| = 1``
    where ``acos`` does not. The three-term recurrence is the paper's binomial expansion
    (L-Softmax, eq. 7) without its alternating large binomial terms.
    """
    previous, current = torch.ones_like(cosine), cosine
    for _ in range(m - 1):
        previous, current = current, 2 * cosine * current - previous
    return current


class _MarginSoftmaxLoss(nn.Module):
    """Softmax cross-entropy over ``r * cos(theta_j)`` with a margin on the target class.

    Subclasses choose the flags and override :meth:`_target_cosine`, which maps the target
    class's cosine ``cos(theta_y)`` to the margin version that replaces it (``psi(theta_y)``,
    ``cos(theta_y) - m``, ``cos(theta_y + m)``). Feature-normalised losses must set the
    attribute ``scale``, the radius that replaces ``||x||``.
    """

    #: Whether the class scores divide out the class weights' norms (``W_j / ||W_j||``),
    #: so that only their directions count.
    normalizes_class_weights = False
    _normalize_features = False  # embedding x -> scale * x / ||x||
    _has_bias = False
    _has_margin = True
    _hyperparameter_names: tuple[str, ...] = ()  # shown by repr

    def __init__(self, n_classes: int, n_components: int) -> None:
        super().__init__()
        self.n_classes = check_int(n_classes, "n_classes", min_value=2)
        self.n_components = check_int(n_components, "n_components", min_value=1)
        self.weight = nn.Parameter(torch.empty(self.n_classes, self.n_components))
        if self._has_bias:
            self.bias = nn.Parameter(torch.empty(self.n_classes))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """(Re)initialise the class weights (and bias) as ``nn.Linear`` does.

        Parameters
        ----------
        generator : torch.Generator, default=None
            The only source of randomness used; ``None`` uses torch's global generator.
        """
        # U(-1/sqrt(n_components), 1/sqrt(n_components)), nn.Linear's default
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5), generator=generator)
        if self.bias is not None:
            bound = 1 / math.sqrt(self.n_components)
            nn.init.uniform_(self.bias, -bound, bound, generator=generator)

    @torch.no_grad()
    def imprint_(
        self,
        class_means: Tensor,
        center: Tensor | None = None,
        norm: float | None = None,
    ) -> _MarginSoftmaxLoss:
        """Start each class's weight at the direction of its mean embedding ("imprinting").

        Random class weights barely move in a short training budget; starting them at the
        class means of the untrained network's embedding (Qi et al., "Low-Shot Learning with
        Imprinted Weights", CVPR 2018) does. Every classifier-based estimator calls this
        before its first epoch; call it yourself in a hand-written loop. With sub-centres
        (:class:`SubCenterArcFaceLoss`) each class's first sub-centre is imprinted and the
        others keep their directions, at the same norm.

        Parameters
        ----------
        class_means : Tensor of shape (n_classes, n_components)
            Mean embedding of each class. A row that is not finite (a class without
            samples yet), or equal to ``center`` (no direction; a warning says so), keeps
            its current direction.
        center : Tensor of shape (n_components,), default=None
            Subtracted from every mean before its direction is taken, e.g. the mean of all
            embeddings (a ReLU network's raw class means are nearly collinear). None
            subtracts nothing.
        norm : float, default=None
            Norm of every class weight afterwards; where the loss keeps the weights' norm
            (``normalizes_class_weights`` is False) it is the initial logit scale on unit
            embeddings. None keeps the weights' current mean norm.

        Returns
        -------
        self
        """
        self.weight.copy_(imprinted(self.weight, self.n_classes, class_means, center, norm))
        return self

    def logits(self, embeddings: Tensor) -> Tensor:
        """Class scores without the margin, for prediction (argmax) or inspection.

        Parameters
        ----------
        embeddings : Tensor of shape (batch_size, n_components)

        Returns
        -------
        Tensor of shape (batch_size, n_classes)
        """
        embeddings, _ = check_classifier_inputs(self, embeddings)
        return self._scores(embeddings)

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
        logits = self._scores(embeddings)
        if labels.numel() == 0:
            return logits.sum() * 0.0
        if self._has_margin:
            target = self._target_logits(embeddings, labels)
            logits = logits.scatter(1, labels[:, None], target[:, None])
        return F.cross_entropy(logits, labels)

    def _scores(self, embeddings: Tensor) -> Tensor:
        weight = F.normalize(self.weight, dim=1) if self.normalizes_class_weights else self.weight
        if self._normalize_features:
            return self.scale * F.linear(F.normalize(embeddings, dim=1), weight)
        return F.linear(embeddings, weight, self.bias)

    def _target_logits(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        weight = self.weight[labels]
        cosine = (F.normalize(embeddings, dim=1) * F.normalize(weight, dim=1)).sum(dim=1)
        radius = (
            self.scale if self._normalize_features else torch.linalg.vector_norm(embeddings, dim=1)
        )
        if not self.normalizes_class_weights:
            radius = radius * torch.linalg.vector_norm(weight, dim=1)
        return radius * self._target_cosine(cosine)

    def _target_cosine(self, cosine: Tensor) -> Tensor:
        """Map ``cos(theta_y)``, shape ``(batch_size,)``, to the target's margin cosine."""
        return cosine

    def extra_repr(self) -> str:
        names = ["n_classes", "n_components", *self._hyperparameter_names]
        return ", ".join(f"{name}={getattr(self, name)!r}" for name in names)


class SoftmaxLoss(_MarginSoftmaxLoss):
    """Softmax cross-entropy on a linear classifier (with bias) over the embeddings.

    The baseline of the family: logits ``W x + b``, no margin. It separates classes but does
    not ask for compact classes, which is what the margin losses add.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.

    Attributes
    ----------
    weight : nn.Parameter of shape (n_classes, n_components)
    bias : nn.Parameter of shape (n_classes,)

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import SoftmaxLoss
    >>> loss = SoftmaxLoss(n_classes=3, n_components=4)
    >>> loss.reset_parameters(torch.Generator().manual_seed(0))
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> loss(x, torch.tensor([0, 0, 1, 1, 2, 2])).shape
    torch.Size([])
    >>> loss.logits(x).shape
    torch.Size([6, 3])
    """

    _has_bias = True
    _has_margin = False


class LargeMarginSoftmaxLoss(_MarginSoftmaxLoss):
    """Large-margin softmax (L-Softmax) with an integer angular multiplier.

    Logits are ``||W_j|| ||x|| cos(theta_j)`` (no bias); the target class's is
    ``||W_y|| ||x|| psi(theta_y)`` with

    ``psi(theta) = (-1)^k cos(m theta) - 2k`` for ``theta`` in ``[k pi/m, (k+1) pi/m]``,

    a monotonically decreasing extension of ``cos(m theta)`` to ``[0, pi]``. ``cos(m theta)``
    is computed as the Chebyshev polynomial of ``cos(theta)``, so gradients are finite at
    ``|cos| = 1``; ``k`` is piecewise constant and carries no gradient.

    With ``softmax_weight = lambda > 0`` the target logit is the papers' training aid
    ``||W_y|| ||x|| (lambda cos(theta_y) + psi(theta_y)) / (1 + lambda)``: L-Softmax and
    SphereFace both start from a large ``lambda`` and decay it during training, because the
    full margin (``m = 4``) from a random start is hard to optimise. It is an ordinary
    attribute, so a training loop may anneal it between steps.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.
    margin : int, default=2
        The integer multiplier ``m >= 1`` of the target angle (``m = 1`` is softmax without
        bias). A float, even ``2.0``, is an error.
    softmax_weight : float, default=0.0
        ``lambda >= 0`` above; ``0`` is the loss as defined in the paper.

    Attributes
    ----------
    weight : nn.Parameter of shape (n_classes, n_components)

    Notes
    -----
    With ``softmax_weight=0`` this is pytorch-metric-learning's ``LargeMarginSoftmaxLoss``
    with ``scale=1`` (its default margin is 4, the paper's experiments use 2 to 4).

    References
    ----------
    .. [1] W. Liu, Y. Wen, Z. Yu and M. Yang, "Large-Margin Softmax Loss for Convolutional
       Neural Networks", ICML 2016. https://arxiv.org/abs/1612.02295

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import LargeMarginSoftmaxLoss
    >>> loss = LargeMarginSoftmaxLoss(n_classes=3, n_components=4, margin=2)
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> y = torch.tensor([0, 0, 1, 1, 2, 2])
    >>> bool(loss(x, y) >= torch.nn.functional.cross_entropy(loss.logits(x), y))
    True
    """

    _hyperparameter_names = ("margin", "softmax_weight")

    def __init__(
        self,
        n_classes: int,
        n_components: int,
        margin: int = 2,
        softmax_weight: float = 0.0,
    ) -> None:
        super().__init__(n_classes, n_components)
        self.margin = check_int(margin, "margin", min_value=1)
        self.softmax_weight = check_real(softmax_weight, "softmax_weight", min_value=0.0)

    def _target_cosine(self, cosine: Tensor) -> Tensor:
        m = self.margin
        with torch.no_grad():
            angle = torch.acos(cosine.clamp(-1.0, 1.0))
            k = torch.floor(angle * (m / math.pi)).clamp_(0, m - 1)
        psi = (1 - 2 * torch.remainder(k, 2)) * cos_multiple_angle(cosine, m) - 2 * k
        lam = self.softmax_weight
        return (lam * cosine + psi) / (1 + lam) if lam else psi


class SphereFaceLoss(LargeMarginSoftmaxLoss):
    """SphereFace's angular softmax (A-Softmax): L-Softmax with unit class weights, no bias.

    Logits are ``||x|| cos(theta_j)``; the target's is ``||x|| psi(theta_y)`` with ``psi``
    as in :class:`LargeMarginSoftmaxLoss`, so the decision depends on angles only.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.
    margin : int, default=4
        The integer multiplier ``m >= 1`` of the target angle (the paper uses 4).
    softmax_weight : float, default=0.0
        The annealing weight ``lambda >= 0`` (see :class:`LargeMarginSoftmaxLoss`); ``0`` is
        the loss as defined. The authors' released training configuration decays it as
        ``max(5, 1000 / (1 + 0.12 t))`` over iterations ``t``, so it never goes below 5;
        with ``m = 4`` and ``lambda = 0`` from a random start, training is often poor.

    Attributes
    ----------
    weight : nn.Parameter of shape (n_classes, n_components)
        Normalised to unit rows when used; the stored norm is irrelevant.

    Notes
    -----
    With ``softmax_weight=0`` this is pytorch-metric-learning's ``SphereFaceLoss`` with
    ``scale=1``.

    References
    ----------
    .. [1] W. Liu, Y. Wen, Z. Yu, M. Li, B. Raj and L. Song, "SphereFace: Deep Hypersphere
       Embedding for Face Recognition", CVPR 2017. https://arxiv.org/abs/1704.08063

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import SphereFaceLoss
    >>> loss = SphereFaceLoss(n_classes=3, n_components=4)
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> loss(x, torch.tensor([0, 0, 1, 1, 2, 2])).ndim
    0
    """

    normalizes_class_weights = True

    def __init__(
        self,
        n_classes: int,
        n_components: int,
        margin: int = 4,
        softmax_weight: float = 0.0,
    ) -> None:
        super().__init__(n_classes, n_components, margin=margin, softmax_weight=softmax_weight)


def _check_scale(scale: object) -> float:
    return check_real(scale, "scale", min_value=0.0, closed="neither")


class CosFaceLoss(_MarginSoftmaxLoss):
    """CosFace (large-margin cosine loss): an additive margin on the cosine.

    Class weights and embeddings are normalised; logits are ``scale * cos(theta_j)`` and
    the target's is ``scale * (cos(theta_y) - margin)``.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.
    margin : float, default=0.35
        Subtracted from the target cosine, in cosine units, in ``[0, 1)``. The paper bounds
        useful margins by ``1 - max_{i != j} cos(W_i, W_j)``, which is below 1 for many
        classes; ``0`` is the normalised softmax (NormFace).
    scale : float, default=64.0
        Radius ``s > 0`` of the hypersphere the embeddings are projected onto.

    Attributes
    ----------
    weight : nn.Parameter of shape (n_classes, n_components)

    Notes
    -----
    Same definition as pytorch-metric-learning's ``CosFaceLoss`` (which stores the weights
    transposed, as ``(embedding_size, num_classes)``).

    References
    ----------
    .. [1] H. Wang, Y. Wang, Z. Zhou, X. Ji, D. Gong, J. Zhou, Z. Li and W. Liu, "CosFace:
       Large Margin Cosine Loss for Deep Face Recognition", CVPR 2018.
       https://arxiv.org/abs/1801.09414

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import CosFaceLoss
    >>> loss = CosFaceLoss(n_classes=3, n_components=4, margin=0.35, scale=64)
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> loss.logits(x).abs().max() <= 64
    tensor(True)
    """

    normalizes_class_weights = True
    _normalize_features = True

    _hyperparameter_names = ("margin", "scale")

    def __init__(
        self, n_classes: int, n_components: int, margin: float = 0.35, scale: float = 64.0
    ) -> None:
        super().__init__(n_classes, n_components)
        margin = check_real(margin, "margin")
        if not 0.0 <= margin < 1.0:
            raise ValueError(
                "`margin` is subtracted from the target cosine and must be in [0, 1), got "
                f"{margin!r}."
            )
        self.margin = margin
        self.scale = _check_scale(scale)

    def _target_cosine(self, cosine: Tensor) -> Tensor:
        return cosine - self.margin


class ArcFaceLoss(_MarginSoftmaxLoss):
    """ArcFace (additive angular margin loss): a margin added to the target angle.

    Class weights and embeddings are normalised; logits are ``scale * cos(theta_j)`` and
    the target's is ``scale * cos(theta_y + margin)`` while ``theta_y + margin < pi``.
    Beyond that, ``cos(theta + margin)`` would rise again and reward moving away from the
    class, so, as in the authors' reference implementation (insightface) and
    pytorch-metric-learning, the target logit falls back to
    ``scale * (cos(theta_y) - margin * sin(margin))``, a CosFace-like penalty that keeps it
    decreasing in ``theta_y`` (it steps down from ``-scale`` at ``theta_y = pi - margin``,
    since ``cos(m) + m sin(m) >= 1``).

    ``cos(theta + m)`` is computed as ``cos(theta) cos(m) - sin(theta) sin(m)`` with
    ``sin(theta) = sqrt(1 - cos^2)``, taken as exactly zero (with zero gradient) where
    ``|cos| >= 1``, so no ``acos`` and no infinite or NaN gradient at ``|cos| = 1``.

    Parameters
    ----------
    n_classes : int
        Number of classes ``C >= 2``; labels are ``0 .. C - 1``.
    n_components : int
        Embedding dimension.
    margin : float, default=0.5
        Added to the target angle, in radians (0.5 rad is about 28.6 degrees), in
        ``[0, pi/2)``; pytorch-metric-learning's ``margin`` is in degrees.
    scale : float, default=64.0
        Radius ``s > 0`` of the hypersphere the embeddings are projected onto.

    Attributes
    ----------
    weight : nn.Parameter of shape (n_classes, n_components)

    Notes
    -----
    Same definition as pytorch-metric-learning's ``ArcFaceLoss`` with
    ``margin=degrees(margin)`` (and weights transposed).

    References
    ----------
    .. [1] J. Deng, J. Guo, N. Xue and S. Zafeiriou, "ArcFace: Additive Angular Margin Loss
       for Deep Face Recognition", CVPR 2019. https://arxiv.org/abs/1801.07698

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import ArcFaceLoss
    >>> loss = ArcFaceLoss(n_classes=3, n_components=4, margin=0.5, scale=64)
    >>> x = torch.randn(6, 4, generator=torch.Generator().manual_seed(1))
    >>> loss.logits(x).argmax(dim=1).shape
    torch.Size([6])
    """

    normalizes_class_weights = True
    _normalize_features = True

    _hyperparameter_names = ("margin", "scale")

    def __init__(
        self, n_classes: int, n_components: int, margin: float = 0.5, scale: float = 64.0
    ) -> None:
        super().__init__(n_classes, n_components)
        margin = check_real(margin, "margin")
        if not 0.0 <= margin < math.pi / 2:
            raise ValueError(
                "`margin` is an angle in radians (0.5 is about 28.6 degrees) and must be in "
                f"[0, pi/2), got {margin!r}."
            )
        self.margin = margin
        self.scale = _check_scale(scale)

    def _target_cosine(self, cosine: Tensor) -> Tensor:
        m = self.margin
        sin_sq = 1 - cosine * cosine
        inside = sin_sq > 0
        # double where: sqrt never sees 0, so its gradient stays finite where |cos| = 1
        sine = torch.where(inside, torch.where(inside, sin_sq, 1.0).sqrt(), 0.0)
        cos_plus_margin = cosine * math.cos(m) - sine * math.sin(m)
        # theta + m < pi  <=>  cos(theta) > cos(pi - m) = -cos(m)
        return torch.where(cosine > -math.cos(m), cos_plus_margin, cosine - m * math.sin(m))
