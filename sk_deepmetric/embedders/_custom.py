"""``MetricEmbedder``: the estimator around any loss called as ``loss(embeddings, labels)``."""

from __future__ import annotations

import copy
from numbers import Integral
from typing import ClassVar

from torch import nn

from .._validation import Interval, StrOptions
from ._base import _BaseEmbedder
from ._params import doctest_example, document

__all__ = ["MetricEmbedder"]


class MetricEmbedder(_BaseEmbedder):
    _loss_params: ClassVar[dict] = {"loss": None, "batching": "balanced", "samples_per_class": 4}
    _default_overrides: ClassVar[dict] = {"normalize": False}
    _parameter_constraints: ClassVar[dict] = {
        **_BaseEmbedder._parameter_constraints,
        "loss": [None, nn.Module],
        "batching": [StrOptions({"balanced", "shuffled"})],
        "samples_per_class": [Interval(Integral, 2, None, closed="left")],
    }

    @property
    def _batching(self):
        return self.batching

    def _check_loss_params(self):
        if self.loss is None:
            raise ValueError(
                "MetricEmbedder needs a `loss`: a torch module called as "
                "loss(embeddings, labels), e.g. sk_deepmetric.losses.TripletMarginLoss()."
            )
        super()._check_loss_params()

    def _build_loss(self, n_classes, n_components):
        return copy.deepcopy(self.loss)

    def _init_loss(self, generator):
        return self._build_loss(len(self.classes_), self.n_components)  # the user's weights


document(
    MetricEmbedder,
    """Embedding trained with any loss module called as ``loss(embeddings, labels)``.

    The loss (one of :mod:`sk_deepmetric.losses`, one from pytorch-metric-learning, or your
    own) is deep-copied at fit, so the estimator's parameter stays untouched and ``clone``
    works; its parameters, if any, are trained with the network's. Labels reach it encoded
    as ``0 .. n_classes - 1``.""",
    """    loss : torch.nn.Module, default=None
        Required (None is an error at ``fit``). Called as ``loss(embeddings, labels)`` and
        returning a scalar tensor.
    batching : {"balanced", "shuffled"}, default="balanced"
        Class-balanced ``P x K`` batches for tuple losses, or shuffled batches for
        classifier-style losses.
""",
    """    .. [1] K. Musgrave, S. Belongie, S.-N. Lim, "A Metric Learning Reality Check",
       ECCV 2020.
""",
    doctest_example("MetricEmbedder", "loss=TripletMarginLoss(), ").replace(
        "    >>> from sk_deepmetric.embedders import MetricEmbedder\n",
        "    >>> from sk_deepmetric.embedders import MetricEmbedder\n"
        "    >>> from sk_deepmetric.losses._pair import TripletMarginLoss\n",
    ),
    "Off by default: whether the loss wants unit vectors depends on the loss.",
)
