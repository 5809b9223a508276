"""The training loop, as a few short named steps the estimators call in order.

``init_optimizer`` / ``init_scheduler`` -> ``fit_loop`` -> (``train_epoch`` -> ``train_step``
-> ``compute_loss``) with ``embed`` for validation and ``transform``. Each step is small so
that distributed training can replace one of them: wrap ``Training.module`` in
``DistributedDataParallel``, give the sampler ``world_size`` and ``rank``, and gather the
embeddings of all ranks in ``compute_loss``.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from .networks import forked_rng

__all__ = [
    "OPTIMIZERS",
    "PRECISIONS",
    "SCHEDULES",
    "LoopResult",
    "Training",
    "compute_loss",
    "embed",
    "fit_loop",
    "init_optimizer",
    "init_scheduler",
    "resolve_device",
    "torch_threads",
    "train_epoch",
    "train_step",
]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
SCHEDULES = (None, "cosine", "step")
PRECISIONS = ("32", "bf16", "fp16")

# Rows per forward pass in ``embed``. Every chunk is padded to this many rows so that each
# row goes through matrix products of the same shape whatever the number of rows asked for:
# BLAS picks kernels by shape, and this keeps ``transform`` bit-identical across batchings.
INFERENCE_ROWS = 256


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; a CUDA device that is absent is an error."""
    if isinstance(device, str) and device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"`device` must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or a "
            f"torch.device, got {device!r}."
        ) from exc
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index is not None and resolved.index >= count):
            raise ValueError(
                f"`device`={device!r} but this machine has {count} CUDA device(s) "
                f"(torch {torch.__version__}, CUDA available: {torch.cuda.is_available()}). "
                "Use device='cpu' or device='auto'; a fitted model can be moved with "
                "set_params(device='cpu')."
            )
    return resolved


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


@dataclass
class Training:
    """What one training step needs: network, loss, optimiser and how to run them."""

    module: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    device: torch.device
    precision: str = "32"
    scaler: torch.amp.GradScaler | None = field(default=None)

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


def init_optimizer(
    name: str, parameters: Iterable[nn.Parameter], learning_rate: float, weight_decay: float
) -> torch.optim.Optimizer:
    """The optimiser over the network's *and* the loss's parameters (class weights, centres)."""
    kwargs = {"momentum": 0.9, "nesterov": True} if name == "sgd" else {}
    return OPTIMIZERS[name](
        list(parameters), lr=learning_rate, weight_decay=weight_decay, **kwargs
    )


def init_scheduler(
    name: str | None, optimizer: torch.optim.Optimizer, n_epochs: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: cosine decay to 0 over ``n_epochs``, or /10 at 50% and 75%."""
    if name is None:
        return None
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(n_epochs, 1))
    milestones = [max(1, n_epochs // 2), max(2, (3 * n_epochs) // 4)]
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)


def compute_loss(loss: nn.Module, embeddings: Tensor, labels: Tensor) -> Tensor:
    """The loss on one batch, in float32 (class weights and margins stay full precision)."""
    return loss(embeddings.float(), labels)


def train_step(t: Training, xb: Tensor, yb: Tensor) -> Tensor:
    """Forward, backward and update on one batch; returns the (detached) batch loss."""
    t.optimizer.zero_grad(set_to_none=True)
    with t.autocast():
        embeddings = t.module(xb)
    value = compute_loss(t.loss, embeddings, yb)
    if not torch.isfinite(value):
        return value.detach()  # no update from a non-finite loss
    if t.scaler is not None:
        t.scaler.scale(value).backward()
        t.scaler.step(t.optimizer)
        t.scaler.update()
    else:
        value.backward()
        t.optimizer.step()
    return value.detach()


class NonFiniteLoss(FloatingPointError):
    """Raised by :func:`train_epoch` when a batch loss is NaN or infinite."""


def train_epoch(t: Training, X: Tensor, y: Tensor, batches: Iterable[np.ndarray]) -> float:
    """One pass over ``batches`` (index arrays into ``X``, ``y``); returns the mean loss."""
    t.module.train()
    t.loss.train()
    total, count = torch.zeros((), device=t.device), 0
    for i, batch in enumerate(batches):
        index = torch.as_tensor(batch, device=X.device)
        value = train_step(t, X[index], y[index])
        total += value * len(batch)
        count += len(batch)
        if (i + 1) % 32 == 0 and not torch.isfinite(total):  # sync with the device rarely
            break
    mean = float(total) / max(count, 1)
    if not math.isfinite(mean):
        raise NonFiniteLoss(mean)
    if t.scheduler is not None:
        t.scheduler.step()
    return mean


def embed(module: nn.Module, X: Tensor, device: torch.device) -> np.ndarray:
    """Embeddings of ``X`` as float32 NumPy, in eval mode, in fixed-size padded chunks."""
    was_training = module.training
    module.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, X.shape[0], INFERENCE_ROWS):
                chunk = X[start : start + INFERENCE_ROWS].to(device, non_blocking=True)
                n = chunk.shape[0]
                if n < INFERENCE_ROWS:
                    pad = chunk.new_zeros((INFERENCE_ROWS - n, *chunk.shape[1:]))
                    chunk = torch.cat([chunk, pad])
                out.append(module(chunk)[:n].float().cpu())
    finally:
        module.train(was_training)
    if not out:
        return np.empty((0, 0), dtype=np.float32)
    return torch.cat(out).numpy()


def _snapshot(t: Training) -> tuple[dict, dict]:
    return (copy.deepcopy(t.module.state_dict()), copy.deepcopy(t.loss.state_dict()))


def _restore(t: Training, snapshot: tuple[dict, dict]) -> None:
    t.module.load_state_dict(snapshot[0])
    t.loss.load_state_dict(snapshot[1])


@dataclass
class LoopResult:
    """How :func:`fit_loop` ended."""

    n_epochs: int  # epochs completed (and kept) in this call
    converged: bool  # stopped because the monitored value stopped improving
    interrupted: bool = False


def fit_loop(
    t: Training,
    X: Tensor,
    y: Tensor,
    batches: Callable[[], Iterable[np.ndarray]],
    *,
    max_iter: int,
    history: list[dict],
    seed: int,
    validation_score: Callable[[], float] | None = None,
    n_iter_no_change: int = 10,
    tol: float = 1e-4,
    verbose: int = 0,
    description: str = "fit",
) -> LoopResult:
    """Train for up to ``max_iter`` epochs, appending one record per epoch to ``history``.

    With ``validation_score`` (higher is better) the loop monitors it and restores the best
    weights when it stops; otherwise it monitors the training loss, as scikit-learn's MLP
    does. It stops once the monitored value has not improved by ``tol`` for
    ``n_iter_no_change`` epochs. Dropout draws from torch's global RNG, so the loop runs
    under :func:`forked_rng` seeded with ``seed``: deterministic, global state untouched.

    A non-finite loss restores the weights of the last finished epoch and raises
    :class:`NonFiniteLoss` (with ``.epoch``); ``KeyboardInterrupt`` restores them, warns and
    returns with ``interrupted=True``.
    """
    from tqdm.auto import tqdm

    best, best_epoch, stall = -math.inf, 0, 0
    last_good = best_snapshot = _snapshot(t)
    epochs = tqdm(range(max_iter), desc=description, disable=verbose < 1, leave=verbose > 1)
    n_done, converged = 0, False
    with forked_rng(seed):
        for epoch in epochs:
            start = time.perf_counter()
            try:
                loss_value = train_epoch(t, X, y, batches())
                score = validation_score() if validation_score is not None else None
            except NonFiniteLoss as exc:
                _restore(t, last_good)
                exc.epoch = len(history) + 1
                raise
            except KeyboardInterrupt:
                _restore(t, last_good)
                warnings.warn(
                    f"Training interrupted during epoch {len(history) + 1}; the model keeps "
                    f"the weights of epoch {len(history)}.",
                    RuntimeWarning,
                    stacklevel=3,
                )
                return LoopResult(n_done, converged=False, interrupted=True)
            n_done += 1
            history.append(
                {
                    "epoch": len(history) + 1,
                    "loss": loss_value,
                    "score": score,
                    "time": time.perf_counter() - start,
                }
            )
            epochs.set_postfix(
                loss=f"{loss_value:.4g}", **({} if score is None else {"score": f"{score:.4f}"})
            )
            monitored = score if score is not None else -loss_value
            if monitored > best + tol:
                stall = 0
            else:
                stall += 1
            if monitored > best:
                best, best_epoch = monitored, epoch
                if validation_score is not None:
                    best_snapshot = _snapshot(t)
            last_good = _snapshot(t)
            if stall >= n_iter_no_change:
                converged = True
                break
    if validation_score is not None and best_epoch != n_done - 1:
        _restore(t, best_snapshot)
    return LoopResult(n_done, converged)
