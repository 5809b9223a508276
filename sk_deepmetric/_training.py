"""The training loop, as a few short named steps the estimators call in order.

``init_optimizer`` / ``init_scheduler`` -> ``fit_loop`` -> (``train_epoch`` -> ``train_step``
-> ``compute_loss``) with ``embed`` for validation and ``transform``.

Devices (:mod:`sk_deepmetric._devices`): the training data go to the device once when they
fit, and batches are indexed there; larger data stay on the host and each batch is pinned and
copied without blocking. Mixed precision covers the network only; the loss (and its class
weights) runs in float32.

Distributed training: when a ``torch.distributed`` process group is initialised (``torchrun``),
:class:`Training` wraps network and loss, as one module, in ``DistributedDataParallel``; the
collectives it needs are in :mod:`sk_deepmetric._devices` too.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ._devices import (
    agreed_score,
    batch_to_device,
    broadcast_object,
    broadcast_weights,
    gather_batch,
    is_distributed,
    on_device,
    sum_over_ranks,
)
from ._streaming import RowSource, Stream, chunks
from ._validation import external_stacklevel
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
    "indexed_batches",
    "inference_chunks",
    "inference_rows",
    "init_optimizer",
    "init_scheduler",
    "state_keys",
    "step_scheduler",
    "streamed_batches",
    "train_epoch",
    "train_step",
]

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}
#: The named learning-rate schedules and the torch classes behind them.
SCHEDULES = {
    "cosine": torch.optim.lr_scheduler.CosineAnnealingLR,
    "step": torch.optim.lr_scheduler.MultiStepLR,
}
PRECISIONS = ("32", "bf16", "fp16")

# Rows per forward pass in ``embed`` (at most). Every chunk is padded to the same number of
# rows so that each row goes through products of the same shape whatever the number of rows
# asked for: BLAS picks kernels by shape, and this keeps ``transform`` bit-identical across
# batchings. On a CPU large samples (images) take fewer rows per pass (see inference_rows).
INFERENCE_ROWS = 256
# On a CPU, a forward pass of ``embed`` holds about this many input values (at least
# MIN_INFERENCE_ROWS rows): a 3 x 64 x 64 image is then embedded in 16-row passes, not
# padded to 256 rows, which made one image cost as much as 256 (benchmarks/bench_transform.py).
CPU_INFERENCE_VALUES = 2**17
MIN_INFERENCE_ROWS = 16


class _NetworkAndLoss(nn.Module):
    """Network and loss as one module, whose forward is the batch loss.

    What ``DistributedDataParallel`` wraps, so that the gradients of the loss's own parameters
    (class weights, centres) are averaged across ranks like the network's.
    """

    def __init__(
        self, network: nn.Module, loss: nn.Module, autocast: Callable[[], Any], gather: bool
    ) -> None:
        super().__init__()
        self.network, self.loss = network, loss
        self.autocast, self.gather = autocast, gather

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        with self.autocast():
            embeddings = self.network(x)
        if self.gather:
            embeddings, labels = gather_batch(embeddings, labels)
        return compute_loss(self.loss, embeddings, labels)


@dataclass
class Training:
    """What one training step needs: network, loss, optimiser and how to run them.

    ``step`` runs network and loss on a batch: the network compiled when ``compile``, and
    network and loss wrapped in ``DistributedDataParallel`` inside a process group.
    ``augment`` (with its ``generator``, on ``device``) transforms each training batch
    before the network sees it; nothing else (validation, ``embed``) uses it.
    ``max_grad_norm`` clips the gradient of every optimised parameter to that total norm.
    """

    module: nn.Module
    loss: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    device: torch.device
    precision: str = "32"
    scaler: torch.amp.GradScaler | None = field(default=None)
    compile: bool = False
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None
    generator: torch.Generator | None = None
    max_grad_norm: float | None = None
    step: nn.Module = field(init=False, repr=False)

    def __post_init__(self) -> None:
        network = torch.compile(self.module) if self.compile else self.module
        step = _NetworkAndLoss(network, self.loss, self.autocast, gather=is_distributed())
        if is_distributed():
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            step = DistributedDataParallel(step, device_ids=ids)
        self.step = step

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.precision == "32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)


def init_optimizer(
    name: str | type[torch.optim.Optimizer],
    parameters: Iterable[nn.Parameter] | Iterable[dict],
    learning_rate: float,
    weight_decay: float,
    options: dict | None = None,
) -> torch.optim.Optimizer:
    """The optimiser over the network's *and* the loss's parameters (class weights, centres).

    ``name`` is a key of :data:`OPTIMIZERS` or an optimiser class; ``options`` are its other
    keyword arguments. For "sgd" they replace the default Nesterov momentum 0.9; the default
    ``nesterov=True`` is left out where they rule it out (no momentum, or a dampening),
    unless they set ``nesterov`` themselves.
    ``parameters`` may be torch's parameter groups (dicts), each with its own ``lr``.
    """
    options = options or {}
    defaults = _sgd_defaults(options) if name == "sgd" else {}
    name = OPTIMIZERS[name] if isinstance(name, str) else name
    kwargs = {"lr": learning_rate, "weight_decay": weight_decay, **defaults, **options}
    optimizer = _build(name, list(parameters), kwargs)
    try:
        _probe_step(optimizer)
    except Exception as exc:  # what torch would raise at the first step, deep in training
        arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        params = optimizer.param_groups[0]["params"] if optimizer.param_groups else []
        where = f" on {params[0].device} {params[0].dtype} parameters" if params else ""
        raise ValueError(
            f"{name.__module__}.{name.__qualname__}({arguments}) cannot take a training "
            f"step{where}: {type(exc).__name__}: {str(exc).rstrip('.')}"
        ) from exc
    return optimizer


def _sgd_defaults(options: dict) -> dict:
    """Nesterov momentum 0.9, without ``nesterov=True`` where the ``options`` rule it out
    (torch's Nesterov needs a momentum and no dampening) and do not set it themselves."""
    defaults = {"momentum": 0.9, "nesterov": True}
    chosen = {**defaults, **options}
    if "nesterov" not in options and (chosen["momentum"] == 0 or chosen.get("dampening", 0)):
        del defaults["nesterov"]
    return defaults


def state_keys(optimizer: torch.optim.Optimizer) -> set[str] | None:
    """The names of the state a step of ``optimizer`` keeps per parameter, with its settings
    (Adam's ``max_exp_avg_sq`` only with ``amsgrad``): one step of a copy of it on a
    one-value parameter per group. None when that copy cannot step."""
    try:
        probe = _probe_step(optimizer)
    except Exception:
        return None
    return {name for state in probe.state.values() for name in state}


def _probe_step(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """A copy of ``optimizer`` with the same settings over one one-value parameter per group
    (on the device and of the dtype of the group's first parameter), after one bare step as
    training takes it; raises what that step raises (``capturable`` on a CPU, an optimiser
    that needs a closure)."""
    probes = [
        nn.Parameter(torch.zeros(1, device=g["params"][0].device, dtype=g["params"][0].dtype))
        if g["params"]
        else nn.Parameter(torch.zeros(1))
        for g in optimizer.param_groups
    ]
    groups = [
        {**{k: v for k, v in g.items() if k not in ("params", "param_names")}, "params": [p]}
        for g, p in zip(optimizer.param_groups, probes, strict=True)
    ]
    probe = type(optimizer)(groups)
    probe.defaults = dict(optimizer.defaults)  # what ``step`` reads (``differentiable``)
    for p in probes:
        p.grad = torch.zeros_like(p)
    with torch.enable_grad():  # as in training (``differentiable`` steps differ under no_grad)
        probe.step()
    return probe


def _build(cls: type, first: object, kwargs: dict) -> object:
    """``cls(first, **kwargs)``; a ``ValueError`` that shows the call if torch rejects it."""
    try:
        return cls(first, **kwargs)
    except (TypeError, ValueError) as exc:
        arguments = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ValueError(
            f"{cls.__module__}.{cls.__qualname__}({arguments}) could not be built: {exc}"
        ) from exc


def init_scheduler(
    name: str | type | None,
    optimizer: torch.optim.Optimizer,
    n_epochs: int,
    options: dict | None = None,
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """Per-epoch schedule: cosine decay to 0 over ``n_epochs``, /10 at 50% and 75% of them,
    or a scheduler class built with ``options`` (which also override the named ones')."""
    if name is None:
        return None
    defaults = {}
    if name == "cosine":
        defaults = {"T_max": max(n_epochs, 1)}
    elif name == "step":
        defaults = {
            "milestones": [max(1, n_epochs // 2), max(2, (3 * n_epochs) // 4)],
            "gamma": 0.1,
        }
    cls = SCHEDULES[name] if isinstance(name, str) else name
    return _build(cls, optimizer, {**defaults, **(options or {})})


def step_scheduler(t: Training, monitored: float) -> None:
    """Advance the schedule by one epoch; ``ReduceLROnPlateau`` gets the monitored value
    (higher is better) as a loss to minimise."""
    if t.scheduler is None:
        return
    if isinstance(t.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        t.scheduler.step(-monitored)
    else:
        t.scheduler.step()


def compute_loss(loss: nn.Module, embeddings: Tensor, labels: Tensor) -> Tensor:
    """The loss on one batch, in float32 (class weights and margins stay full precision)."""
    with torch.autocast(embeddings.device.type, enabled=False):
        return loss(embeddings.float(), labels)


def train_step(t: Training, xb: Tensor, yb: Tensor) -> Tensor:
    """Forward, backward and update on one batch; returns the (detached) batch loss.

    A loss that is not a scalar tensor with a gradient is a ``ValueError`` before any
    backward pass. On the CPU a non-finite loss skips the update. On an accelerator that
    check would wait for the device at every step; there the epoch's mean loss catches it
    (``train_epoch``) and :func:`fit_loop` restores the last good weights.
    """
    t.optimizer.zero_grad(set_to_none=True)
    if t.augment is not None:
        with torch.no_grad():
            xb = t.augment(xb, t.generator)
    value = t.step(xb, yb)
    _check_loss_value(value)
    if t.device.type == "cpu" and not torch.isfinite(value):
        return value.detach()  # on all ranks alike: every rank computes the same loss
    if t.scaler is not None:
        t.scaler.scale(value).backward()
        if t.max_grad_norm is not None:
            t.scaler.unscale_(t.optimizer)
            _clip(t)
        t.scaler.step(t.optimizer)
        t.scaler.update()
    else:
        value.backward()
        if t.max_grad_norm is not None:
            _clip(t)
        t.optimizer.step()
    return value.detach()


def _check_loss_value(value: object) -> None:
    """Raise a ``ValueError`` if the batch loss is not a scalar tensor that autograd can
    differentiate (what ``backward`` needs): from its shape and flags, without a sync."""
    if not isinstance(value, Tensor) or value.ndim != 0:
        given = (
            f"a tensor of shape {tuple(value.shape)}"
            if isinstance(value, Tensor)
            else f"an object of type {type(value).__name__}"
        )
        raise ValueError(
            f"The `loss` returned {given}, but it must return a scalar tensor (shape ()): "
            "reduce it over the batch, e.g. with .mean() (reduction='mean', not 'none')."
        )
    if not value.requires_grad:
        why = (
            "gradients are disabled (fit called under torch.no_grad() or "
            "torch.inference_mode()): call it outside"
            if not torch.is_grad_enabled()
            else "compute it from the embeddings with autograd (not under torch.no_grad(), "
            "nor from detached tensors), also for a batch with nothing to compare (return "
            "embeddings.sum() * 0, not torch.tensor(0.0))"
        )
        raise ValueError(
            "The `loss` returned a tensor that does not require grad, so training has no "
            f"gradient to follow: {why}."
        )


def _clip(t: Training) -> None:
    parameters = [p for group in t.optimizer.param_groups for p in group["params"]]
    torch.nn.utils.clip_grad_norm_(parameters, t.max_grad_norm)


class NonFiniteLoss(FloatingPointError):
    """Raised when training goes non-finite: ``kind`` says what did.

    "loss": a batch loss was NaN or infinite (:func:`train_epoch`); "weights": the loss was
    finite but a parameter became NaN or infinite (a loss with non-finite gradients);
    "validation": the embedding of the held-out samples was not finite. :func:`fit_loop`
    adds ``epoch``.
    """

    def __init__(self, value: float, kind: str = "loss") -> None:
        super().__init__(value)
        self.kind = kind


def _check_finite_weights(t: Training) -> None:
    """Raise :class:`NonFiniteLoss` ("weights") if a parameter of network or loss is not
    finite: one reduction per parameter, once an epoch."""
    for p in (*t.module.parameters(), *t.loss.parameters()):
        if not torch.isfinite(p).all():
            raise NonFiniteLoss(float("nan"), kind="weights")


def train_epoch(t: Training, batches: Iterable[tuple[Tensor, Tensor]]) -> float:
    """One pass over ``batches`` (``(x, labels)`` on ``t.device``); returns the mean loss.

    In a process group the mean is over every rank's samples.
    """
    t.module.train()
    t.loss.train()
    total = torch.zeros((), device=t.device)
    count = 0
    for i, (xb, yb) in enumerate(batches):
        value = train_step(t, xb, yb)
        total += value * len(yb)
        count += len(yb)
        if (i + 1) % 32 == 0 and not torch.isfinite(total):  # sync with the device rarely
            break
    total, count = sum_over_ranks(total, count)
    mean = float(total) / max(count, 1)
    if not math.isfinite(mean):
        # weights already non-finite: a step with non-finite gradients put them there, and
        # the loss only followed (a finite loss whose gradient is NaN, sqrt at 0 say)
        _check_finite_weights(t)
        raise NonFiniteLoss(mean)
    return mean


def indexed_batches(
    X: Tensor, y: Tensor, batches: Iterable[np.ndarray], device: torch.device
) -> Iterator[tuple[Tensor, Tensor]]:
    """``(X[batch], y[batch])`` on ``device`` for each index array of ``batches``.

    ``X`` may live on the host (data too large for the device) or on ``device``; ``y``
    lives on ``device``.
    """
    for batch in batches:
        index = torch.as_tensor(batch, device=y.device)
        xb = X[index] if X.device == y.device else batch_to_device(X, batch, device)
        yield xb, y[index]


def streamed_batches(stream: Stream, y: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of ``stream`` (rows read from an array on disk or a Dataset as they are
    needed), with the labels of each batch from ``y`` on the device."""
    for xb, index in stream:
        yield xb, y[index.to(y.device)]


def embed(
    module: nn.Module,
    X: Tensor | RowSource | Stream,
    device: torch.device,
    *,
    out: np.ndarray | None = None,
    num_workers: int = 0,
) -> np.ndarray:
    """Embeddings of ``X`` as float32 NumPy, in eval mode, in fixed-size padded chunks, on
    ``device`` (a module elsewhere is copied there, not moved).

    ``X`` is a tensor, a :class:`~sk_deepmetric._streaming.RowSource` (read chunk by
    chunk, by ``num_workers`` background processes when > 0), or a ``Stream`` of one, built
    with :func:`inference_chunks` to be embedded every epoch. The embeddings are written to
    ``out`` when given (shape ``(n_samples, width)``, float32), else to a new array.
    """
    module = on_device(module, device)
    was_training = module.training
    module.eval()
    source = X.source if isinstance(X, Stream) else X
    size_of_pass = inference_rows(source.shape[1:], device)
    if isinstance(X, RowSource):
        X = Stream(X, inference_chunks(len(X), size_of_pass), device, num_workers)
    if isinstance(X, Stream):
        n = len(X.source)
        parts = (rows for rows, _ in X)
    else:
        n = len(X)
        parts = (X[start : start + size_of_pass] for start in range(0, n, size_of_pass))
    start = 0
    try:
        with torch.inference_mode():
            for chunk in parts:
                # a copy in torch's (aligned) memory whatever the input's alignment: a row's
                # embedding must not depend on where its chunk starts in the caller's array
                chunk = chunk.to(device, non_blocking=True, copy=True)
                size = chunk.shape[0]
                if size < size_of_pass:
                    pad = chunk.new_zeros((size_of_pass - size, *chunk.shape[1:]))
                    chunk = torch.cat([chunk, pad])
                values = module(chunk)[:size].float().cpu().numpy()
                if out is None:
                    out = np.empty((n, values.shape[1]), dtype=np.float32)
                out[start : start + size] = values
                start += size
    finally:
        module.train(was_training)
    if out is None:
        return np.empty((0, 0), dtype=np.float32)
    return out


def inference_rows(sample_shape: Sequence[int], device: torch.device) -> int:
    """Rows per forward pass of :func:`embed` for samples of ``sample_shape`` on ``device``.

    A fixed number for a model and device (so ``transform`` stays bit-identical across
    batchings): :data:`INFERENCE_ROWS` on an accelerator and for rows of features (whose
    first layer's weights, read once per pass, can outweigh a row), and for signals and
    images on a CPU the power of two of rows holding about :data:`CPU_INFERENCE_VALUES`
    input values, between :data:`MIN_INFERENCE_ROWS` and :data:`INFERENCE_ROWS`: large
    samples in short passes cut the padding of a few queries to a whole pass, and their
    activations stay in the CPU's caches.
    """
    if device.type != "cpu" or len(sample_shape) < 2:
        return INFERENCE_ROWS
    per_row = max(1, math.prod(int(d) for d in sample_shape))
    rows = 1 << max(0, (CPU_INFERENCE_VALUES // per_row).bit_length() - 1)
    return min(INFERENCE_ROWS, max(MIN_INFERENCE_ROWS, rows))


def inference_chunks(n_samples: int, rows: int = INFERENCE_ROWS) -> list[np.ndarray]:
    """The index arrays in which :func:`embed` reads a source of ``n_samples`` rows, ``rows``
    (:func:`inference_rows`) at a time."""
    return chunks(n_samples, rows)


class _Snapshot:
    """A copy of the weights of network and loss (parameters and buffers), and of the
    optimiser's state that goes with them (Adam's moments, its step count, the rates).

    The buffers are read from the modules at every save and restore, not once: a module may
    replace a buffer (``self.mean = 0.9 * self.mean + ...``) rather than update it in place,
    and the non-persistent ones (``persistent=False``), which ``state_dict`` leaves out, count
    too. Two sets of copies, allocated once (again only when what they copy changes shape);
    :meth:`save` overwrites the spare set in place, which then becomes current with a single
    assignment, so that an interruption in the middle of a copy leaves the previous copy
    whole and matched.
    """

    def __init__(self, t: Training) -> None:
        self._t = t
        self._copies = [_cloned(_weights(t)) for _ in range(2)]
        self._optimizer = t.optimizer
        self._states: list[dict | None] = [copy.deepcopy(t.optimizer.state_dict()), None]
        self._current = 0

    def save(self) -> None:
        spare = 1 - self._current
        live = _weights(self._t)
        with torch.no_grad():
            if _shapes(self._copies[spare]) == _shapes(live):
                for name, value in live.items():
                    self._copies[spare][name].copy_(value)
            else:  # a buffer replaced by one of another shape, or registered since
                self._copies[spare] = _cloned(live)
            self._states[spare] = _copy_state(self._optimizer.state_dict(), self._states[spare])
        self._current = spare

    def restore(self) -> None:
        current = self._current
        live = _weights(self._t)
        with torch.no_grad():
            for name, kept in self._copies[current].items():
                value = live.get(name)
                if value is not None and _shape(value) == _shape(kept):
                    value.copy_(kept)
                else:  # a buffer replaced since (another shape, or None): put the copy back
                    owner, _, path = name.partition(".")
                    module = self._t.module if owner == "module" else self._t.loss
                    parent, _, leaf = path.rpartition(".")
                    setattr(module.get_submodule(parent), leaf, kept.clone())
        # a copy: the optimiser's state must not alias the snapshot's
        self._optimizer.load_state_dict(copy.deepcopy(self._states[current]))


def _weights(t: Training) -> dict[str, Tensor]:
    """Every parameter and buffer of network and loss, by name ("module." or "loss." and the
    module's own name), as the modules hold them now."""
    return {
        f"{owner}.{name}": value
        for owner, module in (("module", t.module), ("loss", t.loss))
        for name, value in (*module.named_parameters(), *module.named_buffers())
    }


def _cloned(weights: dict[str, Tensor]) -> dict[str, Tensor]:
    return {name: value.detach().clone() for name, value in weights.items()}


def _shape(value: Tensor) -> tuple:
    return value.shape, value.dtype, value.device


def _shapes(weights: dict[str, Tensor]) -> dict[str, tuple]:
    return {name: _shape(value) for name, value in weights.items()}


def _copy_state(state: dict, into: dict | None) -> dict:
    """A copy of the optimiser state dict ``state``: ``into``'s tensors overwritten in place
    when it holds tensors of the same names, shapes and dtypes, new ones otherwise."""
    if into is None or _layout(into) != _layout(state):
        return copy.deepcopy(state)
    for key, values in state["state"].items():
        kept = into["state"][key]
        for name, value in values.items():
            if isinstance(value, Tensor):
                kept[name].copy_(value)
            else:
                kept[name] = copy.deepcopy(value)
    into["param_groups"] = copy.deepcopy(state["param_groups"])
    return into


def _layout(state: dict) -> dict:
    """Per parameter and name of an optimiser state dict: the shape and dtype of a tensor,
    None for any other value."""
    return {
        key: {n: (v.shape, v.dtype) if isinstance(v, Tensor) else None for n, v in values.items()}
        for key, values in state["state"].items()
    }


@dataclass
class _Monitor:
    """The best monitored value so far (higher is better), and the epochs it has stalled."""

    best: float
    tol: float
    best_epoch: int = -1
    stall: int = 0  # epochs since the value last improved by more than ``tol``

    def update(self, epoch: int, value: float) -> bool:
        """Count epoch ``epoch``'s ``value``; True when it is a new best.

        Only an improvement by more than ``tol`` resets the stall count, as in scikit-learn's
        MLP, but any improvement becomes the best (the weights a validated fit restores).
        """
        if value > self.best + self.tol:
            self.stall = 0
        else:
            self.stall += 1
        if value > self.best:
            self.best, self.best_epoch = value, epoch
            return True
        return False


def _record_epoch(
    history: list[dict], progress: Any, loss_value: float, score: float | None, seconds: float
) -> None:
    """Append the epoch to ``history`` and count it on the progress bar, with its loss (and
    score). The bar is counted here rather than by iterating it, which counts an epoch only
    at a later refresh: fast epochs showed 0/N next to later epochs' values."""
    history.append(
        {"epoch": len(history) + 1, "loss": loss_value, "score": score, "time": seconds}
    )
    progress.set_postfix(
        loss=f"{loss_value:.4g}",
        **({} if score is None else {"score": f"{score:.4f}"}),
        refresh=False,
    )
    progress.update()  # refreshes at most every ``mininterval``, with this epoch's values


def _drop_epoch(
    history: list[dict], n_recorded: int, last_good: Any, progress: Any, n_done: int
) -> None:
    """Forget an epoch that did not finish: its record, its weights, and its count on the
    progress bar (:func:`_record_epoch` counts it before the callbacks and the scheduler)."""
    del history[n_recorded:]
    last_good.restore()
    if progress.n > n_done:
        progress.n = n_done
        progress.refresh()


def _kept_line(
    description: str,
    first: int,
    n_done: int,
    monitor: _Monitor,
    converged: bool,
    tol: float,
    n_iter_no_change: int,
) -> str:
    """What ``verbose`` prints when early stopping kept weights older than the last epoch's:
    why training stopped, and which epoch's weights the model keeps (as scikit-learn's MLP
    prints its stopping reason). Epochs are numbered as in ``history``."""
    if not converged:
        why = f"stopped at max_iter, after epoch {first + n_done}"
    elif monitor.stall >= n_iter_no_change:
        why = (
            f"stopped after epoch {first + n_done}: the validation score did not improve by "
            f"more than tol={tol:g} for {n_iter_no_change} epochs"
        )
    else:
        why = f"stopped after epoch {first + n_done} (a callback asked)"
    if monitor.best_epoch >= 0:
        kept = f"restored the weights of epoch {first + monitor.best_epoch + 1}, the best"
    else:
        kept = "kept the starting weights, which no epoch beat"
    return f"{description} {why}; {kept} (validation score {monitor.best:.4f})."


@dataclass
class LoopResult:
    """How :func:`fit_loop` ended."""

    n_epochs: int  # epochs completed (and kept) in this call
    converged: bool  # stopped because the monitored value stopped improving
    interrupted: bool = False
    stalled: int = 0  # epochs since the monitored value last improved by more than ``tol``
    # with a validation score: the epoch (of this call, from 0) whose weights are kept, -1
    # for the starting weights (no epoch beat them); None without one
    best_epoch: int | None = None


def fit_loop(
    t: Training,
    batches: Callable[[], Iterable[tuple[Tensor, Tensor]]],
    *,
    max_iter: int,
    history: list[dict],
    seed: int,
    validation_score: Callable[[], float] | None = None,
    n_iter_no_change: int = 10,
    tol: float = 1e-4,
    verbose: int = 0,
    description: str = "fit",
    on_epoch_end: Callable[[dict], bool] | None = None,
) -> LoopResult:
    """Train for up to ``max_iter`` epochs, appending one record per epoch to ``history``.

    With ``validation_score`` (higher is better) the loop monitors it, starting from the score
    of the weights it was given, and restores the best weights when it stops (the starting
    ones if no epoch beat them); otherwise it monitors the training loss, as scikit-learn's MLP
    does. It stops once the monitored value has not improved by ``tol`` for
    ``n_iter_no_change`` epochs, or when ``on_epoch_end(record)`` (the epoch's ``history``
    entry) returns True, which counts as converged. With ``verbose``, a progress bar shows each
    epoch's loss (and score), and a printed line says why training stopped and which epoch's
    weights were kept when validation restored earlier ones. Dropout draws from torch's
    global RNG, so the loop runs under :func:`forked_rng` seeded with ``seed``:
    deterministic, global state untouched. In a process group, rank 0 computes the
    validation score (and the callbacks' decision) for all, and its weights are broadcast to
    the others at the end.

    A non-finite loss (or weights, or validation embedding) restores the weights of the last
    finished epoch and raises :class:`NonFiniteLoss` (with ``.epoch``); so does any other
    exception raised during an epoch (by ``on_epoch_end``, say), which propagates unchanged.
    ``KeyboardInterrupt`` at any step of an epoch drops that epoch's record, warns and
    returns with ``interrupted=True``, with the weights a finished loop would keep: the best
    finished epoch's when validating (as scikit-learn's MLP does), the last finished one's
    otherwise; when no epoch has finished in a fit that started with an empty ``history``,
    it propagates, so that the caller can discard the half-built model. The weights of the
    last finished epoch (and, when validating, of the best one) are kept by
    :class:`_Snapshot`, with the optimiser's state at that point, and restored together: the
    optimiser's state always matches the weights kept.
    """
    from tqdm.auto import tqdm

    monitor = _Monitor(best=-math.inf, tol=tol)
    last_good = _Snapshot(t)
    best = _Snapshot(t) if validation_score is not None else None
    if validation_score is not None:
        # the starting weights compete too: training that never beats them on held-out
        # classes is undone rather than kept
        try:
            monitor.best = agreed_score(validation_score)
        except NonFiniteLoss as exc:
            exc.epoch = 0  # the untrained network's output
            raise
    progress = tqdm(total=max_iter, desc=description, disable=verbose < 1, leave=verbose > 1)
    n_done, converged, fresh, first = 0, False, not history, len(history)
    with forked_rng(seed), progress:  # the bar closes however the loop ends
        for epoch in range(max_iter):
            start, n_recorded = time.perf_counter(), len(history)
            try:
                loss_value = train_epoch(t, batches())
                _check_finite_weights(t)
                score = agreed_score(validation_score)
                _record_epoch(history, progress, loss_value, score, time.perf_counter() - start)
                monitored = score if score is not None else -loss_value
                if monitor.update(epoch, monitored) and best is not None:
                    best.save()
                step_scheduler(t, monitored)
                stop = on_epoch_end is not None and broadcast_object(
                    bool(on_epoch_end(history[-1]))
                )
                last_good.save()
            except NonFiniteLoss as exc:
                _drop_epoch(history, n_recorded, last_good, progress, n_done)
                exc.epoch = len(history) + 1
                raise
            except KeyboardInterrupt:
                # whatever step was interrupted, the weights and the history go back to the
                # last finished epoch; with none finished in a fresh fit, nothing is kept
                _drop_epoch(history, n_recorded, last_good, progress, n_done)
                if fresh and not history:
                    raise
                kept = f"the weights of epoch {len(history)}"
                best_epoch = None
                # the best finished epoch, as a finished loop keeps (not the interrupted
                # one, if the interruption came after its weights were saved as the best)
                if best is not None and monitor.best_epoch < epoch:
                    best_epoch = monitor.best_epoch
                    if best_epoch != n_done - 1:
                        best.restore()
                    kept = (
                        f"the weights of its best epoch by validation score, epoch "
                        f"{first + best_epoch + 1}"
                        if best_epoch >= 0
                        else "its starting weights, which no epoch beat on validation score"
                    )
                warnings.warn(
                    f"Training interrupted during epoch {len(history) + 1}; the model keeps "
                    f"{kept}.",
                    RuntimeWarning,
                    stacklevel=external_stacklevel(),
                )
                return LoopResult(
                    n_done, False, interrupted=True, stalled=monitor.stall, best_epoch=best_epoch
                )
            except Exception:
                _drop_epoch(history, n_recorded, last_good, progress, n_done)
                raise
            n_done += 1
            if stop or monitor.stall >= n_iter_no_change:
                converged = True
                break
    if best is not None and monitor.best_epoch != n_done - 1:
        best.restore()
    if verbose > 0 and best is not None and monitor.best_epoch != n_done - 1:
        print(_kept_line(description, first, n_done, monitor, converged, tol, n_iter_no_change))
    if is_distributed():
        broadcast_weights(t.module, t.loss)
    best_epoch = None if best is None else monitor.best_epoch
    return LoopResult(n_done, converged, stalled=monitor.stall, best_epoch=best_epoch)
