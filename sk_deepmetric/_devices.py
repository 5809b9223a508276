"""Where training runs: the device, the data's placement, CPU threads and process groups.

``resolve_device`` turns the ``device`` parameter into a ``torch.device`` (under ``torchrun``,
this rank's GPU). ``place_data`` moves the training data to the device once when they fit, so
that batches are indexed there; larger data stay on the host and ``batch_to_device`` pins and
copies each batch without blocking. ``torch_threads`` sets the intra-op threads for a block.

Distributed training: when a ``torch.distributed`` process group is initialised
(``torchrun``), the samplers take ``world_size`` and ``rank`` (:func:`shard`), the loss sees
the embeddings of every rank (:func:`gather_batch`), so that N ranks with batch B train like
one process with batch N x B, the epoch's mean loss is over every rank's samples
(:func:`sum_over_ranks`), rank 0 decides early stopping (:func:`agreed_score`), and its
weights are broadcast at the end (:func:`broadcast_weights`). Outside a process group each of
these is the single-process identity.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import hashlib
import itertools
import os
import warnings
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

__all__ = [
    "DEVICE_DATA_FRACTION",
    "agreed_score",
    "batch_to_device",
    "broadcast_object",
    "broadcast_weights",
    "check_same_data",
    "gather_batch",
    "is_distributed",
    "place_data",
    "resolve_device",
    "shard",
    "sum_over_ranks",
    "torch_threads",
    "without_autocast",
]

# Training data smaller than this fraction of the device's free memory are moved there once;
# larger data stay on the host and go over batch by batch.
DEVICE_DATA_FRACTION = 0.25


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA device that is absent is an error.

    Under ``torchrun``, ``"auto"`` and ``"cuda"`` (no index) mean this rank's GPU,
    ``cuda:$LOCAL_RANK``.
    """
    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    expected = "`device` must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a torch.device"
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{expected}, got {device!r}.") from exc
    if resolved.type not in ("cpu", "cuda"):  # mps, meta, xpu...: not supported here
        raise ValueError(f"{expected} of one of those types, got {device!r}.")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ValueError(
                f"`device`={device!r} but this machine has {count} CUDA device(s) "
                f"(torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}). "
                "Use device='cpu' or device='auto'; a fitted model can be moved with "
                "set_params(device='cpu')."
            )
        if resolved.index is None and is_distributed():
            local = int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))
            resolved = torch.device("cuda", local % count)
    return resolved


def on_device(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` itself when its parameters and buffers are on ``device``, else a copy
    moved there: inference (``transform``, ``predict``) never moves the caller's module."""
    device = torch.device(device)

    def there(t: Tensor) -> bool:
        same_type = t.device.type == device.type
        return same_type and (device.index is None or t.device.index == device.index)

    if all(there(t) for t in itertools.chain(module.parameters(), module.buffers())):
        return module
    return copy.deepcopy(module).to(device)


def as_tensor(X: np.ndarray | Tensor, device: torch.device | None = None) -> Tensor:
    """``torch.as_tensor(X, device=device)``, without torch's warning about a read-only array
    (``np.load(mmap_mode="r")``, a pandas frame's values under copy-on-write): this library
    never writes into the tensors it makes from its callers' arrays."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The given NumPy array is not writable")
        return torch.as_tensor(X, device=device)


def place_data(X: np.ndarray | Tensor, device: torch.device) -> Tensor:
    """``X`` as a tensor on ``device`` when it fits there, else left in host memory.

    On the device, batches are indexed in place: no copy per step. Data over
    ``DEVICE_DATA_FRACTION`` of the free CUDA memory stay on the host, and
    :func:`batch_to_device` pins and copies each batch without blocking.
    """
    tensor = as_tensor(X)
    if device.type == "cpu":
        return tensor
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        if tensor.nbytes > DEVICE_DATA_FRACTION * free:
            return tensor
    return tensor.to(device)


def batch_to_device(X: Tensor, index: np.ndarray, device: torch.device) -> Tensor:
    """Rows ``index`` of host-resident ``X`` on ``device``: gathered, pinned and copied."""
    batch = X[torch.from_numpy(np.asarray(index))]
    if device.type == "cuda":
        batch = batch.pin_memory()  # pinned pages from the caching host allocator: async copy
    return batch.to(device, non_blocking=True)


@contextlib.contextmanager
def torch_threads(n_threads: int | None) -> Iterator[None]:
    """Run the block with ``n_threads`` intra-op threads (``None``: leave as is), then restore."""
    if n_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def is_distributed() -> bool:
    """Whether this process is one rank of an initialised ``torch.distributed`` group."""
    return dist.is_available() and dist.is_initialized()


def shard() -> dict[str, int]:
    """``world_size`` and ``rank`` for the batch samplers (1 and 0 outside a process group)."""
    if not is_distributed():
        return {"world_size": 1, "rank": 0}
    return {"world_size": dist.get_world_size(), "rank": dist.get_rank()}


def sum_over_ranks(total: Tensor, count: int) -> tuple[Tensor, int]:
    """``total`` and ``count`` summed over every rank (as given outside a process group)."""
    if not is_distributed():
        return total, count
    sums = torch.stack([total, torch.tensor(float(count), device=total.device)])
    dist.all_reduce(sums)
    return sums[0], int(sums[1])


def broadcast_object(value: object) -> object:
    """Rank 0's ``value`` on every rank (``value`` itself outside a process group)."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_same_data(shape: tuple, labels: np.ndarray) -> None:
    """Under torch.distributed, a ``ValueError`` on every rank unless every rank passed data
    of the same ``shape`` with the same ``labels`` (a hash of them): each rank trains on its
    share of batches cut from the whole data, so ranks with other data would run different
    numbers of collectives and wait for one another forever. One collective per fit."""
    if not is_distributed():
        return
    labels = np.ascontiguousarray(labels)
    mine = (
        tuple(int(d) for d in shape),
        hashlib.sha256(labels.tobytes() + str(labels.dtype).encode()).hexdigest(),
    )
    every: list = [None] * dist.get_world_size()
    dist.all_gather_object(every, mine)
    other = next((rank for rank, seen in enumerate(every) if seen != every[0]), None)
    if other is not None:
        labels_differ = " with other labels" if every[other][0] == every[0][0] else ""
        raise ValueError(
            "Under torch.distributed every rank must call fit with the same X and y: the "
            "estimator cuts each global batch from the whole data and gives every rank its "
            f"share. Rank 0 passed X of shape {every[0][0]}, rank {other} X of shape "
            f"{every[other][0]}{labels_differ}. Pass the whole data on every rank (a memmap "
            "reads only the rows each rank uses)."
        )


def gather_batch(embeddings: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """The embeddings and labels of every rank's batch, concatenated in rank order.

    Gradients flow back to this rank's rows: the functional ``all_gather_single`` is
    differentiable, its backward a sum-reduce-scatter of the gradients that every rank computes
    for them (each rank computes the same loss), and DDP then averages over ranks, so the net
    gradient is that of the loss on the whole concatenated batch. Batches of unequal sizes are
    padded for the collective and trimmed.
    """
    from torch.distributed._functional_collectives import all_gather_single

    world_size = dist.get_world_size()
    size = torch.tensor([embeddings.shape[0]], device=labels.device)
    sizes = [torch.empty_like(size) for _ in range(world_size)]
    dist.all_gather(sizes, size)
    sizes = [int(n) for n in sizes]
    pad = max(sizes) - embeddings.shape[0]
    if pad:
        embeddings = nn.functional.pad(embeddings, (0, 0, 0, pad))
        labels = nn.functional.pad(labels, (0, pad))
    all_labels = [torch.empty_like(labels) for _ in range(world_size)]
    dist.all_gather(all_labels, labels.contiguous())
    all_embeddings = all_gather_single(embeddings.contiguous(), 0, dist.group.WORLD)
    return (
        torch.cat([e[:n] for e, n in zip(all_embeddings.split(max(sizes)), sizes)]),
        torch.cat([c[:n] for c, n in zip(all_labels, sizes)]),
    )


def agreed_score(validation_score: Callable[[], float] | None) -> float | None:
    """The validation score, computed on rank 0 and shared, so that all ranks stop alike."""
    if validation_score is None:
        return None
    if not is_distributed():
        return validation_score()
    return broadcast_object(validation_score() if dist.get_rank() == 0 else None)


def broadcast_weights(*modules: nn.Module) -> None:
    """Rank 0's parameters and buffers of ``modules`` on every rank.

    Buffers too: batch-norm running statistics are kept per rank.
    """
    for module in modules:
        for tensor in module.state_dict().values():
            if isinstance(tensor, Tensor):
                dist.broadcast(tensor, src=0)


def without_autocast(forward: Callable) -> Callable:
    """``forward(self, embeddings, ...)`` run with ``torch.autocast`` disabled on the
    embeddings' device, so that a loss computes in float32 in a mixed-precision training
    loop as outside one (half-precision embeddings are then promoted by the loss itself):
    autocast would run its matrix products in half precision and feed in-place updates and
    ``scatter`` tensors of two dtypes."""

    @functools.wraps(forward)
    def wrapped(self, embeddings, *args, **kwargs):
        device_type = getattr(getattr(embeddings, "device", None), "type", None)
        if device_type not in ("cpu", "cuda"):
            return forward(self, embeddings, *args, **kwargs)
        with torch.autocast(device_type, enabled=False):
            return forward(self, embeddings, *args, **kwargs)

    return wrapped
