"""The training seams every embedder shares: optimiser and schedule classes with routed keyword
arguments, and callbacks.

Routed arguments (``optimizer__momentum=0.8``, ``lr_schedule__step_size=10``) are stored on
the estimator under those names, as skorch does, and :class:`RoutedParamsMixin` makes them
parameters like the others for ``get_params``, ``set_params``, ``clone`` and grid search.
:func:`check_seams` checks them against the class they are routed to before any data is
touched, so that a misspelt name is an error naming the estimator's parameter rather than a
``TypeError`` from inside torch.
"""

from __future__ import annotations

import inspect

import torch

from .._training import OPTIMIZERS, SCHEDULES
from .._validation import did_you_mean
from ._params import ROUTED_PREFIXES

__all__ = ["CALLBACK_HOOKS", "RoutedParamsMixin", "check_seams", "routed", "run_callbacks"]

#: The methods a callback may have; each is optional, but a callback has at least one.
CALLBACK_HOOKS = ("on_train_begin", "on_epoch_end", "on_train_end")

# Arguments the estimator sets itself, with the parameter that sets them.
_SET_BY_ESTIMATOR = {
    "optimizer__": {"params": None, "lr": "learning_rate_init", "weight_decay": "weight_decay"},
    "lr_schedule__": {"optimizer": None},
}


class RoutedParamsMixin:
    """``get_params`` and ``set_params`` that include the routed keyword arguments."""

    def _routed_params(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.startswith(ROUTED_PREFIXES)}

    def get_params(self, deep=True):
        return {**super().get_params(deep=deep), **self._routed_params()}

    def set_params(self, **params):
        for key in [k for k in params if k.startswith(ROUTED_PREFIXES)]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)


def routed(estimator, prefix: str) -> dict:
    """The keyword arguments routed to ``prefix`` ("optimizer__" or "lr_schedule__")."""
    return {k[len(prefix) :]: v for k, v in vars(estimator).items() if k.startswith(prefix)}


def _target(estimator, prefix: str, named: dict):
    """The class the arguments of ``prefix`` go to (None: no schedule)."""
    value = estimator.optimizer if prefix == "optimizer__" else estimator.lr_schedule
    return named.get(value, value) if isinstance(value, str) else value


def check_seams(estimator) -> None:
    """Check the optimiser and schedule classes, their routed arguments and the callbacks."""
    name = type(estimator).__name__
    kinds = {
        "optimizer__": ("optimizer", torch.optim.Optimizer, OPTIMIZERS),
        "lr_schedule__": ("lr_schedule", torch.optim.lr_scheduler.LRScheduler, SCHEDULES),
    }
    for prefix, (param, base, named) in kinds.items():
        target = _target(estimator, prefix, named)
        if isinstance(target, type) and not issubclass(target, base):
            raise ValueError(
                f"{name}: `{param}` must be one of {sorted(named)} or a subclass of "
                f"{base.__module__}.{base.__qualname__}, got the class {target.__qualname__}."
            )
        arguments = routed(estimator, prefix)
        if arguments and target is None:
            raise ValueError(
                f"{name}: `{prefix}{next(iter(arguments))}` is routed to the learning-rate "
                "schedule, but `lr_schedule` is None; set `lr_schedule` too."
            )
        if arguments:
            _check_arguments(name, prefix, target, arguments)
    callbacks = estimator.callbacks or []
    for i, callback in enumerate(callbacks):
        if not any(callable(getattr(callback, hook, None)) for hook in CALLBACK_HOOKS):
            raise ValueError(
                f"{name}: `callbacks[{i}]` ({callback!r}) has none of the methods "
                f"{', '.join(CALLBACK_HOOKS)}."
            )


def _check_arguments(name: str, prefix: str, target: type, arguments: dict) -> None:
    accepted = inspect.signature(target).parameters
    takes_any = any(p.kind == p.VAR_KEYWORD for p in accepted.values())
    for argument in arguments:
        if argument in _SET_BY_ESTIMATOR[prefix]:
            by = _SET_BY_ESTIMATOR[prefix][argument]
            instead = f"; set `{by}` instead" if by else ""
            raise ValueError(
                f"{name}: `{prefix}{argument}` cannot be routed: the estimator sets "
                f"{target.__qualname__}'s `{argument}` itself{instead}."
            )
        if argument not in accepted and not takes_any:
            options = [p for p in accepted if p not in _SET_BY_ESTIMATOR[prefix]]
            raise ValueError(
                f"{name}: `{prefix}{argument}` is routed to {target.__qualname__}, which "
                f"takes no argument {argument!r}; it takes {options}."
                f"{did_you_mean(argument, options)}"
            )


def run_callbacks(estimator, hook: str, *args) -> bool:
    """Call ``hook`` on every callback that has it; True if any ``on_epoch_end`` said stop.

    Every callback is called, also after one has asked to stop.
    """
    answers = [
        getattr(callback, hook)(estimator, *args)
        for callback in estimator.callbacks or []
        if callable(getattr(callback, hook, None))
    ]
    return any(bool(answer) for answer in answers)
