"""Cross-batch memory (XBM, Wang et al., 2020): a queue of recent embeddings to mine against."""

from __future__ import annotations

import inspect

import torch
from torch import Tensor, nn

from .._devices import without_autocast
from .._validation import check_embeddings_and_labels, check_int

__all__ = ["CrossBatchMemory"]


class CrossBatchMemory(nn.Module):
    """A tuple loss whose anchors also meet the embeddings of recent batches (XBM).

    A training step computes ``loss(embeddings, labels, ref_embeddings=queue,
    ref_labels=queue_labels)``: every anchor of the batch meets the batch and the queue as
    positives and negatives, so a batch of 32 mines among ``32 + memory_size`` samples. Then
    the batch (detached) joins the queue, replacing the oldest entries once it holds
    ``memory_size``. The queue's embeddings are those of earlier weights; after the first
    phase of training they drift slowly, which is why the paper only starts the memory after
    a warm-up (``warmup`` training steps, during which the batch is its own reference). The
    queue gets no gradient. In eval mode the loss is that of the batch alone and the queue
    is left as it is. Under ``torch.distributed`` the estimators pass the batches of every
    rank, so the queue holds them all, the same on every rank.

    Memory: ``memory_size x n_components`` floats for the queue, and the loss's distance
    blocks grow from ``batch x batch`` to ``batch x (batch + memory_size)``.

    Parameters
    ----------
    loss : torch.nn.Module
        A tuple loss that takes references: :class:`ContrastiveLoss`,
        :class:`TripletMarginLoss` (with a built-in miner), :class:`MultiSimilarityLoss`,
        :class:`SupConLoss`, or any module whose ``forward`` takes ``ref_embeddings`` and
        ``ref_labels``.
    n_components : int
        Embedding dimension.
    memory_size : int, default=1024
        Number of past embeddings kept, ``>= 1``.
    warmup : int, default=0
        Training steps (calls in training mode) before the memory is filled and used (the
        paper's 1,000 iterations on its datasets; the estimators use one epoch).

    Attributes
    ----------
    memory_embeddings : Tensor of shape (memory_size, n_components)
        The queue; its first ``min(n_enqueued, memory_size)`` rows are filled.
    memory_labels : Tensor of shape (memory_size,)
    n_enqueued : Tensor of shape ()
        Embeddings enqueued so far; the next goes to row ``n_enqueued % memory_size``.
    n_steps : Tensor of shape ()
        Training steps so far, warm-up included.

    References
    ----------
    .. [1] X. Wang, H. Zhang, W. Huang, M. R. Scott, "Cross-Batch Memory for Embedding
       Learning", CVPR 2020. https://arxiv.org/abs/1912.06798

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.losses import ContrastiveLoss, CrossBatchMemory
    >>> loss = CrossBatchMemory(ContrastiveLoss(), n_components=4, memory_size=6)
    >>> g = torch.Generator().manual_seed(0)
    >>> for _ in range(2):
    ...     x = torch.randn(4, 4, generator=g)
    ...     value = loss(x, torch.tensor([0, 0, 1, 1]))
    >>> int(loss.n_enqueued), loss.memory()[0].shape
    (8, torch.Size([6, 4]))
    """

    def __init__(
        self, loss: nn.Module, n_components: int, memory_size: int = 1024, warmup: int = 0
    ) -> None:
        super().__init__()
        forward = getattr(loss, "forward", None)
        takes_references = (
            isinstance(loss, nn.Module)
            and forward is not None
            and {"ref_embeddings", "ref_labels"} <= set(inspect.signature(forward).parameters)
        )
        if not takes_references:
            raise ValueError(
                "`loss` must be a torch module whose forward takes `ref_embeddings` and "
                "`ref_labels` (ContrastiveLoss, TripletMarginLoss, MultiSimilarityLoss, "
                f"SupConLoss), got {type(loss).__name__}."
            )
        if callable(getattr(loss, "miner", None)):
            raise ValueError(
                f"`loss` {type(loss).__name__} has a callable `miner`, which mines within the "
                "batch and cannot use the memory: give it a built-in miner (a name) or None."
            )
        self.loss = loss
        self.n_components = check_int(n_components, "n_components", min_value=1)
        self.memory_size = check_int(memory_size, "memory_size", min_value=1)
        self.warmup = check_int(warmup, "warmup", min_value=0)
        self.register_buffer("memory_embeddings", torch.zeros(memory_size, n_components))
        self.register_buffer("memory_labels", torch.zeros(memory_size, dtype=torch.long))
        self.register_buffer("n_enqueued", torch.zeros((), dtype=torch.long))
        self.register_buffer("n_steps", torch.zeros((), dtype=torch.long))

    def memory(self) -> tuple[Tensor, Tensor]:
        """The queue's filled rows, ``(embeddings, labels)``, oldest first."""
        n_enqueued = int(self.n_enqueued)  # one device sync per step
        order = torch.arange(min(n_enqueued, self.memory_size), device=self.memory_labels.device)
        if n_enqueued > self.memory_size:
            order = (order + n_enqueued) % self.memory_size
        # copies (advanced indexing): the queue changes in place after the step
        return self.memory_embeddings[order], self.memory_labels[order]

    def reset_memory(self) -> None:
        """Empty the queue and restart the warm-up."""
        self.n_enqueued.zero_()
        self.n_steps.zero_()

    @without_autocast
    def forward(self, embeddings: Tensor, labels: Tensor) -> Tensor:
        """The loss of the batch against itself and the queue; then the batch joins the queue.

        Parameters
        ----------
        embeddings : Tensor of shape (batch_size, n_components)
        labels : Tensor of shape (batch_size,)
            Integer class labels.

        Returns
        -------
        Tensor of shape ()
        """
        checked, labels = check_embeddings_and_labels(embeddings, labels)
        if checked.shape[1] != self.n_components:
            raise ValueError(
                f"`embeddings` must have `n_components`={self.n_components} columns, got "
                f"{checked.shape[1]}."
            )
        if not self.training:
            return self.loss(embeddings, labels)
        self.n_steps += 1
        if int(self.n_steps) <= self.warmup:
            return self.loss(embeddings, labels)
        ref_embeddings, ref_labels = self.memory()
        value = self.loss(embeddings, labels, ref_embeddings=ref_embeddings, ref_labels=ref_labels)
        self._enqueue(checked.detach(), labels)
        return value

    @torch.no_grad()
    def _enqueue(self, embeddings: Tensor, labels: Tensor) -> None:
        embeddings, labels = embeddings[-self.memory_size :], labels[-self.memory_size :]
        rows = (self.n_enqueued + torch.arange(len(labels), device=labels.device)) % (
            self.memory_size
        )
        self.memory_embeddings[rows] = embeddings.to(self.memory_embeddings)
        self.memory_labels[rows] = labels.to(self.memory_labels)
        self.n_enqueued += len(labels)

    def extra_repr(self) -> str:
        return (
            f"n_components={self.n_components}, memory_size={self.memory_size}, "
            f"warmup={self.warmup}"
        )
