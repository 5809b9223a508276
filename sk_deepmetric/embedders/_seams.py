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

import fnmatch
import inspect
import numbers

import torch
from torch import nn

from .._training import OPTIMIZERS, SCHEDULES
from .._validation import did_you_mean
from ._params import ROUTED_PREFIXES

__all__ = [
    "CALLBACK_HOOKS",
    "RoutedParamsMixin",
    "check_seams",
    "parameter_groups",
    "routed",
    "run_callbacks",
]

#: The methods a callback may have; each is optional, but a callback has at least one.
CALLBACK_HOOKS = ("on_train_begin", "on_epoch_end", "on_train_end")

#: The routed optimiser argument that splits the trained parameters into groups of their own
#: (skorch's name and form): a list of ``(pattern, options)``.
PARAM_GROUPS = "param_groups"

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
        for key in params:
            name, nested, _ = key.partition("__")
            value = params.get(name, getattr(self, name, None))
            if (
                nested
                and not key.startswith(ROUTED_PREFIXES)
                and name in self._get_param_names()
                and not hasattr(value, "set_params")
            ):
                raise ValueError(_not_routed(self, key, params[key], value))
        for key in [k for k in params if k.startswith(ROUTED_PREFIXES)]:
            setattr(self, key, params.pop(key))
        return super().set_params(**params)


def _not_routed(estimator, key: str, given, value) -> str:
    """The error for ``key`` (``name__attribute=given``), a nested parameter of ``value``, an
    object without ``set_params`` (a torch module): scikit-learn's is an AttributeError."""
    name, _, attribute = key.partition("__")
    if isinstance(value, nn.Module) and attribute.isidentifier():
        cls = type(value).__name__
        what = f"the `{name}` module ({cls})"
        first = "..., " if _needs_arguments(type(value)) else ""  # Linear's widths, say
        configured = f"{cls}({first}{attribute}={given!r})"
        grid = f"[{configured}, {cls}({first}{attribute}=...)]"
    else:
        what = f"the `{name}` module" if isinstance(value, nn.Module) else f"`{name}` ({value!r})"
        configured, grid = "...", "[one_module, another_module]"
    routed_ones = " and ".join(f"`{prefix}*`" for prefix in ROUTED_PREFIXES)
    return (
        f"{type(estimator).__name__}: `{key}` would set `{attribute}` of {what}, but only "
        f"{routed_ones} are routed: nested parameters of a module are not. Set `{name}` "
        f"itself to a configured object instead: {name}={configured}, or in a grid search "
        f'{{"{name}": {grid}}}.'
    )


def _needs_arguments(cls: type) -> bool:
    """Whether building ``cls`` takes arguments without defaults (True if unknown)."""
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(
        p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        for p in parameters
    )


def routed(estimator, prefix: str) -> dict:
    """The keyword arguments routed to ``prefix`` ("optimizer__" or "lr_schedule__").

    ``None`` for an argument the class does not take is no argument: it unsets a keyword
    routed to an earlier class (``set_params(optimizer="adam", optimizer__momentum=None)``
    after SGD), which scikit-learn's ``set_params`` cannot remove. A class that takes the
    argument is given the ``None``.
    """
    arguments = {k[len(prefix) :]: v for k, v in vars(estimator).items() if k.startswith(prefix)}
    target = _target(estimator, prefix, _NAMED[prefix])
    return {k: v for k, v in arguments.items() if v is not None or _takes(target, k)}


def _takes(target, argument: str) -> bool:
    """Whether ``target`` (a class, or None) is called with ``argument`` (True if unknown)."""
    if target is None:
        return False
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return True
    return argument in parameters or any(p.kind == p.VAR_KEYWORD for p in parameters.values())


def _target(estimator, prefix: str, named: dict):
    """The class the arguments of ``prefix`` go to (None: no schedule)."""
    value = estimator.optimizer if prefix == "optimizer__" else estimator.lr_schedule
    return named.get(value, value) if isinstance(value, str) else value


_NAMED = {"optimizer__": OPTIMIZERS, "lr_schedule__": SCHEDULES}


def check_seams(estimator) -> None:
    """Check the optimiser and schedule classes, their routed arguments and the callbacks."""
    name = type(estimator).__name__
    kinds = {
        "optimizer__": ("optimizer", torch.optim.Optimizer),
        "lr_schedule__": ("lr_schedule", torch.optim.lr_scheduler.LRScheduler),
    }
    for prefix, (param, base) in kinds.items():
        named = _NAMED[prefix]
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
        if prefix == "optimizer__" and PARAM_GROUPS in arguments:
            _check_group_specs(name, arguments.pop(PARAM_GROUPS))
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
    for argument in arguments:
        if argument in _SET_BY_ESTIMATOR[prefix]:
            by = _SET_BY_ESTIMATOR[prefix][argument]
            instead = f"; set `{by}` instead" if by else ""
            raise ValueError(
                f"{name}: `{prefix}{argument}` cannot be routed: the estimator sets "
                f"{target.__qualname__}'s `{argument}` itself{instead}."
            )
        if not _takes(target, argument):
            accepted = inspect.signature(target).parameters
            options = [p for p in accepted if p not in _SET_BY_ESTIMATOR[prefix]]
            raise ValueError(
                f"{name}: `{prefix}{argument}` is routed to {target.__qualname__}, which "
                f"takes no argument {argument!r}; it takes {options}."
                f"{did_you_mean(argument, options)} To unset it, set_params("
                f"{prefix}{argument}=None)."
            )


def _check_group_specs(name: str, specs) -> None:
    where = f"{name}: `optimizer__{PARAM_GROUPS}`"
    if not isinstance(specs, (list, tuple)):
        raise ValueError(
            f"{where} must be a list of (pattern, options) pairs, got {type(specs).__name__}."
        )
    for i, spec in enumerate(specs):
        if not (
            isinstance(spec, (list, tuple))
            and len(spec) == 2
            and isinstance(spec[0], str)
            and isinstance(spec[1], dict)
        ):
            raise ValueError(
                f"{where}[{i}] must be a (pattern, options) pair: a glob pattern over the "
                "parameter names (e.g. 'loss_.*', 'module_.0.*') and a dict of options "
                f"(e.g. {{'lr_multiplier': 10}}), got {spec!r}."
            )
        multiplier = spec[1].get("lr_multiplier", 1.0)
        if not isinstance(multiplier, numbers.Real) or not multiplier > 0:
            raise ValueError(
                f"{where}[{i}]: 'lr_multiplier' must be a positive number, got {multiplier!r}."
            )
        if "params" in spec[1]:
            raise ValueError(f"{where}[{i}]: the pattern chooses the parameters, not 'params'.")


def parameter_groups(estimator, named: list, default_groups: list[dict], lr: float) -> list:
    """The optimiser's parameter groups: ``default_groups`` unless the estimator has the routed
    ``optimizer__param_groups``, whose ``(pattern, options)`` pairs (in order) each take the
    parameters whose names match the glob pattern and that no earlier pair took; an
    ``lr_multiplier`` option multiplies the group's learning rate (else ``lr``, or the
    options' own ``lr``). The parameters no pattern takes keep their default groups.

    ``named``: ``(name, parameter)`` of every trained parameter, names prefixed by the
    attribute that holds them (``module_.`` for the network, ``loss_.`` for the loss).
    """
    specs = routed(estimator, "optimizer__").get(PARAM_GROUPS)
    if not specs:
        return default_groups
    taken, groups = set(), []
    for i, (pattern, options) in enumerate(specs):
        chosen = [p for n, p in named if fnmatch.fnmatchcase(n, pattern) and id(p) not in taken]
        if not chosen:
            names = [n for n, _ in named]
            shown = ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")
            raise ValueError(
                f"{type(estimator).__name__}: `optimizer__{PARAM_GROUPS}[{i}]`'s pattern "
                f"{pattern!r} matches no parameter not already taken; the parameters are "
                f"named {shown}."
            )
        taken.update(id(p) for p in chosen)
        options = dict(options)
        multiplier = options.pop("lr_multiplier", 1.0)
        group_lr = options.pop("lr", lr) * multiplier
        groups.append({"params": chosen, **options, "lr": group_lr})
    for group in default_groups:
        rest = [p for p in group["params"] if id(p) not in taken]
        if rest:
            groups.append({**group, "params": rest})
    return groups


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
