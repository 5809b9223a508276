"""The training seams: optimiser and schedule classes with routed arguments, gradient
clipping, callbacks, and the weight snapshots of the training loop."""

import copy
import pickle
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from torch import nn

from sk_deepmetric import _training
from sk_deepmetric.embedders import ArcFaceEmbedder, MetricEmbedder, TripletEmbedder
from sk_deepmetric.losses import TripletMarginLoss

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
FAST = {"max_iter": 3, "hidden_layer_sizes": (16,), "n_components": 8, "batch_size": 32}


def fast(cls, **params):
    return cls(**{**FAST, "random_state": 0, **params})


def _group(model):
    """The first parameter group of the fitted model's optimiser, as it was saved."""
    return model._optimizer_state["param_groups"][0]


# ----------------------------------------------------------------- routed arguments
def test_routed_arguments_are_parameters():
    model = TripletEmbedder(optimizer="sgd", optimizer__momentum=0.5, optimizer__dampening=0.1)
    params = model.get_params()
    assert params["optimizer__momentum"] == 0.5 and params["optimizer__dampening"] == 0.1
    assert "routed_params" not in params
    copy = clone(model)
    assert copy.get_params() == params
    copy.set_params(optimizer__momentum=0.8, margin=0.3)
    assert (copy.optimizer__momentum, copy.margin) == (0.8, 0.3)
    assert model.optimizer__momentum == 0.5  # the original is untouched
    assert pickle.loads(pickle.dumps(model)).get_params() == params
    assert "optimizer__momentum=0.5" in repr(model)


def test_routed_arguments_reach_the_optimizer(digits):
    X, y = digits
    model = fast(TripletEmbedder, optimizer="sgd", optimizer__momentum=0.5).fit(X, y)
    group = _group(model)
    assert (group["momentum"], group["nesterov"]) == (0.5, True)  # the other default stays
    assert _group(fast(TripletEmbedder, optimizer="sgd").fit(X, y))["momentum"] == 0.9


def test_none_unsets_a_routed_argument_the_new_class_does_not_take(digits):
    # set_params cannot delete a keyword: None for one the class does not take routes it
    # nowhere, so a grid can switch optimisers; a class that takes it is given the None
    X, y = digits
    model = fast(TripletEmbedder, optimizer="sgd", optimizer__momentum=0.9)
    model.set_params(optimizer="adam", optimizer__momentum=None).fit(X, y)
    assert "momentum" not in _group(model)
    assert model.get_params()["optimizer__momentum"] is None
    grid = [
        {"optimizer": ["sgd"], "optimizer__momentum": [0.9]},
        {"optimizer": ["adam"], "optimizer__momentum": [None]},
    ]
    search = GridSearchCV(fast(TripletEmbedder), grid, cv=2, error_score="raise").fit(X, y)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    sgd = fast(TripletEmbedder, optimizer="sgd", optimizer__foreach=None).fit(X, y)
    assert _group(sgd)["foreach"] is None
    with pytest.raises(ValueError, match=r"To unset it, set_params\(optimizer__momentum=None\)"):
        fast(TripletEmbedder, optimizer="adam", optimizer__momentum=0.9).fit(X, y)
    # back to a class that takes it: it gets the None, and the error says which keyword
    with pytest.raises(ValueError, match=r"\(`optimizer__momentum` is None, which a class"):
        model.set_params(optimizer="sgd").fit(X, y)


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"optimizer__momentum": 0.0}, (0.0, 0, False)),  # plain SGD
        ({"optimizer__dampening": 0.1}, (0.9, 0.1, False)),
        ({"optimizer__momentum": 0.5}, (0.5, 0, True)),
        ({"optimizer__momentum": 0.5, "optimizer__nesterov": False}, (0.5, 0, False)),
    ],
)
def test_sgd_drops_the_default_nesterov_where_the_routed_options_rule_it_out(
    digits, options, expected
):
    X, y = digits
    group = _group(fast(TripletEmbedder, optimizer="sgd", max_iter=1, **options).fit(X, y))
    assert (group["momentum"], group["dampening"], group["nesterov"]) == expected


def test_an_optimizer_class_with_its_arguments(digits):
    X, y = digits
    model = fast(
        ArcFaceEmbedder,
        optimizer=torch.optim.RMSprop,
        optimizer__alpha=0.9,
        learning_rate_init=3e-4,
        weight_decay=1e-5,
    ).fit(X, y)
    group = _group(model)
    assert (group["alpha"], group["lr"], group["weight_decay"]) == (0.9, 3e-4, 1e-5)
    assert np.isfinite(model.transform(X)).all()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"optimizer__capturable": True}, "capturable=True"),  # CUDA-only, on CPU parameters
        ({"optimizer__differentiable": True}, "in-place operation"),
    ],
)
def test_an_optimiser_that_cannot_step_is_refused_before_training(digits, options, message):
    # torch accepts these settings when the optimiser is built and fails only at its first
    # step, deep in the training loop (an AssertionError for ``capturable``); the estimator
    # tries a step on a probe first and names the optimiser and its arguments.
    X, y = digits
    model = fast(TripletEmbedder, **options)
    with pytest.raises(
        ValueError,
        match=r"(?s)torch\.optim\.adam\.Adam\(.*cannot take a "
        rf"training step on cpu torch\.float32 parameters.*{message}.*optimizer__",
    ):
        model.fit(X, y)
    assert not hasattr(model, "module_")


def test_grid_search_over_a_routed_argument(digits):
    X, y = digits
    pipe = make_pipeline(FunctionTransformer(), fast(TripletEmbedder, optimizer="sgd"))
    search = GridSearchCV(pipe, {"tripletembedder__optimizer__momentum": [0.3, 0.6]}, cv=2)
    search.fit(X, y)
    assert search.best_params_["tripletembedder__optimizer__momentum"] in (0.3, 0.6)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    fitted = search.best_estimator_[-1]
    assert _group(fitted)["momentum"] == fitted.optimizer__momentum


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"optimizer": "sgd", "optimizer__momentm": 0.5},
            "TripletEmbedder: `optimizer__momentm` is routed to SGD, which takes no argument "
            "'momentm'; it takes ['momentum', 'dampening', 'nesterov', 'maximize', 'foreach', "
            "'differentiable', 'fused']. Did you mean 'momentum'? To unset it, "
            "set_params(optimizer__momentm=None).",
        ),
        (
            {"optimizer__lr": 0.1},
            "TripletEmbedder: `optimizer__lr` cannot be routed: the estimator sets Adam's "
            "`lr` itself; set `learning_rate_init` instead.",
        ),
        (
            {"lr_schedule__gamma": 0.5},
            "TripletEmbedder: `lr_schedule__gamma` is routed to the learning-rate schedule, "
            "but `lr_schedule` is None; set `lr_schedule` too.",
        ),
        (
            {"optimizer": dict},
            "TripletEmbedder: `optimizer` must be one of ['adam', 'adamw', 'sgd'] or a "
            "subclass of torch.optim.optimizer.Optimizer, got the class dict.",
        ),
        (
            {"lr_schedule": torch.optim.SGD},
            "TripletEmbedder: `lr_schedule` must be one of ['cosine', 'step'] or a subclass "
            "of torch.optim.lr_scheduler.LRScheduler, got the class SGD.",
        ),
        (
            {"lr_schedule": "step", "lr_schedule__optimizer": None},
            "TripletEmbedder: `lr_schedule__optimizer` cannot be routed: the estimator sets "
            "MultiStepLR's `optimizer` itself.",
        ),
        (
            {"callbacks": [object()]},
            "TripletEmbedder: `callbacks[0]` (<object object at 0x...>) has none of the "
            "methods on_train_begin, on_epoch_end, on_train_end.",
        ),
        (
            {"max_grad_norm": 0.0},
            "The 'max_grad_norm' parameter of TripletEmbedder must be None or a float in the "
            "range (0.0, inf). Got 0.0 instead.",
        ),
        (  # torch rejects the construction: the message shows the call
            {"optimizer": "sgd", "optimizer__momentum": 0.0, "optimizer__nesterov": True},
            "TripletEmbedder: torch.optim.sgd.SGD(lr=0.0001, weight_decay=0.0, momentum=0.0, "
            "nesterov=True) could not be built: Nesterov momentum requires a momentum and zero "
            "dampening. Check `optimizer` and its `optimizer__*` arguments.",
        ),
        (
            {"lr_schedule": torch.optim.lr_scheduler.StepLR},
            "TripletEmbedder: torch.optim.lr_scheduler.StepLR() could not be built: "
            "StepLR.__init__() missing 1 required positional argument: 'step_size'. Check "
            "`lr_schedule` and its `lr_schedule__*` arguments.",
        ),
    ],
)
def test_bad_seams_are_errors_before_training(digits, params, message):
    X, y = digits
    model = fast(TripletEmbedder, **params)
    with pytest.raises(ValueError) as info:
        model.fit(X, y)
    assert re.sub(r"0x[0-9a-f]+", "0x...", str(info.value)) == message  # object addresses vary
    assert not hasattr(model, "module_")


@pytest.mark.parametrize(
    ("model", "params", "message"),
    [
        (
            MetricEmbedder(loss=TripletMarginLoss()),
            {"loss__margin": 0.3},
            "MetricEmbedder: `loss__margin` would set `margin` of the `loss` module "
            "(TripletMarginLoss), but only `optimizer__*` and `lr_schedule__*` are routed: "
            "nested parameters of a module are not. Set `loss` itself to a configured object "
            'instead: loss=TripletMarginLoss(margin=0.3), or in a grid search {"loss": '
            "[TripletMarginLoss(margin=0.3), TripletMarginLoss(margin=...)]}.",
        ),
        (
            TripletEmbedder(network=nn.Linear(64, 8)),
            {"network__bias": False, "margin": 0.3},
            "TripletEmbedder: `network__bias` would set `bias` of the `network` module "
            "(Linear), but only `optimizer__*` and `lr_schedule__*` are routed: nested "
            "parameters of a module are not. Set `network` itself to a configured object "
            'instead: network=Linear(..., bias=False), or in a grid search {"network": '
            "[Linear(..., bias=False), Linear(..., bias=...)]}.",
        ),
        (
            TripletEmbedder(),
            {"network__bias": False},
            "TripletEmbedder: `network__bias` would set `bias` of `network` ('mlp'), but only "
            "`optimizer__*` and `lr_schedule__*` are routed: nested parameters of a module "
            "are not. Set `network` itself to a configured object instead: network=..., or "
            'in a grid search {"network": [one_module, another_module]}.',
        ),
    ],
)
def test_nested_parameters_of_a_module_are_named_as_not_routed(model, params, message):
    before = model.get_params()
    with pytest.raises(ValueError) as info:
        model.set_params(**params)
    assert str(info.value) == message
    assert model.get_params() == before  # nothing was set


def test_grid_search_over_a_nested_parameter_of_a_loss_names_the_alternative(digits):
    X, y = digits
    model = fast(MetricEmbedder, loss=TripletMarginLoss())
    for estimator, key in (
        (model, "loss__margin"),
        (make_pipeline(model), "metricembedder__loss__margin"),
    ):
        search = GridSearchCV(estimator, {key: [0.1, 0.2]}, cv=2)
        with pytest.raises(ValueError, match=r"nested parameters of a module are not\. Set"):
            search.fit(X, y)
    # the alternative the message gives works
    grid = {"loss": [TripletMarginLoss(margin=0.1), TripletMarginLoss(margin=0.2)]}
    search = GridSearchCV(model, grid, cv=2).fit(X, y)
    assert search.best_params_["loss"].margin in (0.1, 0.2)


def test_unknown_parameters_keep_scikit_learns_error():
    with pytest.raises(ValueError, match=r"Invalid parameter 'bogus' for estimator"):
        TripletEmbedder().set_params(bogus__x=1)


def test_an_unknown_keyword_names_the_class():
    with pytest.raises(
        TypeError,
        match=re.escape(
            "TripletEmbedder() got an unexpected keyword argument 'margn'. Did you mean 'margin'?"
        ),
    ):
        TripletEmbedder(margn=0.1)


# ----------------------------------------------------------------- schedules
def test_a_scheduler_class_with_its_arguments(digits):
    X, y = digits
    model = fast(
        TripletEmbedder,
        early_stopping=False,
        learning_rate_init=1e-3,
        lr_schedule=torch.optim.lr_scheduler.StepLR,
        lr_schedule__step_size=1,
        lr_schedule__gamma=0.5,
    ).fit(X, y)
    assert model.n_iter_ == 3
    assert _group(model)["lr"] == 1e-3 * 0.5**3  # halved after each of the 3 epochs


def test_named_schedules_take_routed_arguments_too(digits):
    X, y = digits
    model = fast(
        TripletEmbedder,
        early_stopping=False,
        learning_rate_init=1e-3,
        lr_schedule="step",
        lr_schedule__milestones=[1],
        lr_schedule__gamma=0.25,
    ).fit(X, y)
    assert _group(model)["lr"] == 1e-3 * 0.25


class _RecordingPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    steps = []

    def step(self, metrics):
        type(self).steps.append(float(metrics))
        super().step(metrics)


@pytest.mark.parametrize("early_stopping", [False, True])
def test_reduce_on_plateau_gets_the_monitored_value_as_a_loss(digits, early_stopping):
    X, y = digits
    _RecordingPlateau.steps = []
    model = fast(
        TripletEmbedder, early_stopping=early_stopping, lr_schedule=_RecordingPlateau
    ).fit(X, y)
    key, sign = ("score", -1.0) if early_stopping else ("loss", 1.0)
    assert _RecordingPlateau.steps == [sign * h[key] for h in model.history_]


# ----------------------------------------------------------------- gradient clipping
def _one_step(**params):
    """One SGD step of size 1 on one batch of a linear network, so the change of the weights
    is the (clipped) gradient itself."""
    network = nn.Linear(64, 8)
    with torch.no_grad():
        network.weight.copy_(torch.linspace(-1, 1, 64 * 8).reshape(8, 64))
        network.bias.zero_()
    return MetricEmbedder(
        loss=TripletMarginLoss(miner="all"),
        network=network,
        n_components=8,
        normalize=False,
        batch_size=256,
        max_iter=1,
        early_stopping=False,
        optimizer="sgd",
        optimizer__momentum=0.0,
        optimizer__nesterov=False,
        learning_rate_init=1.0,
        random_state=0,
        **params,
    ), network


def _change(model, network):
    fitted = model.module_
    with torch.no_grad():
        squares = torch.sum((fitted.weight - network.weight) ** 2)
        squares += torch.sum((fitted.bias - network.bias) ** 2)
    return float(torch.sqrt(squares))


def test_gradient_clipping_bounds_the_step(digits):
    X, y = digits
    free, network = _one_step()
    unclipped = _change(free.fit(X, y), network)
    assert unclipped > 0
    max_norm = unclipped / 10
    clipped, network = _one_step(max_grad_norm=max_norm)
    change = _change(clipped.fit(X, y), network)
    # torch scales the gradient by max_norm / (norm + 1e-6). In float32 each of the 520
    # updated entries (|w| <= 1) rounds once in the update and once in the difference
    # above: at most 2 u each, sqrt(520) * 2 u in the norm; the scale factor and the norms
    # add a few u relative to the step.
    expected = max_norm * unclipped / (unclipped + 1e-6)
    U32 = 2.0**-24
    assert abs(change - expected) <= np.sqrt(520) * 2 * U32 * (1 + expected) + 16 * U32 * expected
    same, network = _one_step(max_grad_norm=unclipped * 10)  # above the norm: no change
    assert _change(same.fit(X, y), network) == unclipped


# ----------------------------------------------------------------- callbacks
class _Recorder:
    def __init__(self, stop_at=None):
        self.stop_at, self.calls = stop_at, []

    def on_train_begin(self, estimator):
        self.calls.append(("begin", hasattr(estimator, "module_")))

    def on_epoch_end(self, estimator, record):
        self.calls.append(("epoch", record["epoch"], estimator.n_iter_, dict(record)))
        return record["epoch"] == self.stop_at

    def on_train_end(self, estimator):
        self.calls.append(("end", estimator.n_iter_))


def test_callbacks_see_every_epoch(digits):
    X, y = digits
    recorder = _Recorder()
    model = fast(TripletEmbedder, callbacks=[recorder, _OnlyEnd()]).fit(X, y)
    # the estimator's callbacks are the ones called (fit does not clone its parameters)
    calls = model.callbacks[0].calls
    assert calls[0] == ("begin", True) and calls[-1] == ("end", 3)
    epochs = [c for c in calls if c[0] == "epoch"]
    assert [c[1:3] for c in epochs] == [(1, 1), (2, 2), (3, 3)]
    assert [c[3] for c in epochs] == model.history_
    assert model.callbacks[1].ended == 1


class _OnlyEnd:
    def __init__(self):
        self.ended = 0

    def on_train_end(self, estimator):
        self.ended += 1


def test_a_callback_stops_training_without_a_convergence_warning(digits):
    X, y = digits
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        model = fast(
            TripletEmbedder, max_iter=50, n_iter_no_change=50, callbacks=[_Recorder(stop_at=2)]
        ).fit(X, y)
    assert model.n_iter_ == len(model.history_) == 2


class _Failing:
    def __init__(self, at):
        self.at = at

    def on_epoch_end(self, estimator, record):
        if record["epoch"] == self.at:
            raise RuntimeError("callback failed")


def test_a_failing_callback_leaves_a_consistent_model(digits):
    X, y = digits
    reference = fast(TripletEmbedder, early_stopping=False, max_iter=1).fit(X, y)
    model = fast(TripletEmbedder, early_stopping=False, callbacks=[_Failing(at=2)])
    with pytest.raises(RuntimeError, match="callback failed"):
        model.fit(X, y)
    assert model.n_iter_ == len(model.history_) == 1  # epoch 2's weights are undone
    np.testing.assert_array_equal(model.transform(X), reference.transform(X))
    first = fast(TripletEmbedder, early_stopping=False, callbacks=[_Failing(at=1)])
    with pytest.raises(RuntimeError, match="callback failed"):
        first.fit(X, y)
    assert not hasattr(first, "module_")  # nothing finished: unfitted


def test_callbacks_do_not_change_the_result(digits):
    X, y = digits
    plain = fast(TripletEmbedder).fit(X, y)
    watched = fast(TripletEmbedder, callbacks=[_Recorder()], max_grad_norm=None).fit(X, y)
    np.testing.assert_array_equal(plain.transform(X), watched.transform(X))


# ----------------------------------------------------------------- weight snapshots
def test_snapshots_restore_what_they_saved():
    module, loss = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), nn.Linear(2, 1)
    t = _training.Training(module, loss, torch.optim.SGD(module.parameters(), lr=1.0), None,
                           torch.device("cpu"))  # fmt: skip
    snapshot = _training._Snapshot(t)
    start = {k: v.clone() for k, v in module.state_dict().items()}
    with torch.no_grad():
        for p in (*module.parameters(), *loss.parameters()):
            p.add_(1.0)
    module(torch.randn(4, 3))  # moves the batch-norm running statistics
    saved = {k: v.clone() for k, v in module.state_dict().items()}
    snapshot.save()
    with torch.no_grad():
        module[0].weight.mul_(3.0)
    snapshot.restore()
    assert all(torch.equal(saved[k], v) for k, v in module.state_dict().items())
    assert not torch.equal(saved["0.weight"], start["0.weight"])


class _Buffers(nn.Module):
    """A module that replaces one buffer (``self.mean = ...``) and updates a non-persistent
    one in place when it runs in train mode."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.register_buffer("mean", torch.zeros(3))
        self.register_buffer("count", torch.zeros(()), persistent=False)

    def forward(self, x):
        self.mean = 0.5 * self.mean + 0.5 * x.mean(0)
        self.count.add_(1)
        return self.linear(x - self.mean)


def test_snapshots_restore_replaced_and_non_persistent_buffers():
    module = _Buffers()
    t = _training.Training(module, nn.Identity(), torch.optim.SGD(module.parameters(), lr=1.0),
                           None, torch.device("cpu"))  # fmt: skip
    snapshot = _training._Snapshot(t)
    module(torch.randn(4, 3))
    saved = {k: v.clone() for k, v in module.named_buffers()}
    snapshot.save()
    kept = [x.data_ptr() for x in snapshot._copies[snapshot._current].values()]
    module(torch.randn(4, 3))
    snapshot.restore()
    assert all(torch.equal(saved[k], v) for k, v in module.named_buffers())
    assert int(module.count) == 1
    # saved again: the copies are overwritten in place, each set allocated once
    for _ in range(2):
        module(torch.randn(4, 3))
        snapshot.save()
    assert [x.data_ptr() for x in snapshot._copies[snapshot._current].values()] == kept
    # a buffer replaced by one of another shape is put back as it was saved
    saved = {k: v.clone() for k, v in module.named_buffers()}
    module.mean = torch.zeros(5)
    snapshot.restore()
    assert all(torch.equal(saved[k], v) for k, v in module.named_buffers())


def test_snapshots_keep_the_optimiser_state_of_their_weights_in_two_buffers():
    module = nn.Linear(3, 2)
    optimizer = torch.optim.Adam(module.parameters(), lr=0.1)
    t = _training.Training(module, nn.Identity(), optimizer, None, torch.device("cpu"))
    snapshot = _training._Snapshot(t)

    def step():
        optimizer.zero_grad()
        module(torch.randn(4, 3)).square().sum().backward()
        optimizer.step()

    states, pointers = [], []
    for _ in range(4):  # four saves: after the first two, the two buffers are reused
        step()
        snapshot.save()
        states.append(copy.deepcopy(optimizer.state_dict()))
        pointers.append(snapshot._states[snapshot._current]["state"][0]["exp_avg"].data_ptr())
    assert pointers[2:] == pointers[:2] and pointers[0] != pointers[1]
    step()
    snapshot.restore()
    restored = optimizer.state_dict()
    for key, values in states[-1]["state"].items():
        for name, value in values.items():
            assert torch.equal(restored["state"][key][name], value), (key, name)
    # the restored state is the optimiser's own: stepping it leaves the snapshot as it was
    step()
    assert torch.equal(snapshot._states[snapshot._current]["state"][0]["step"],
                       states[-1]["state"][0]["step"])  # fmt: skip


# ----------------------------------------------------------------- parameter groups
def test_param_groups_give_the_loss_its_own_learning_rate(digits):
    X, y = digits
    model = fast(
        ArcFaceEmbedder,
        learning_rate_init=1e-3,
        optimizer__param_groups=[("loss_.*", {"lr_multiplier": 10})],
    ).fit(X, y)
    groups = model._optimizer_state["param_groups"]
    n_loss, n_network = len(list(model.loss_.parameters())), len(list(model.module_.parameters()))
    assert [len(g["params"]) for g in groups] == [n_loss, n_network]
    assert [g["lr"] for g in groups] == [pytest.approx(1e-2), pytest.approx(1e-3)]


def test_param_groups_can_freeze_the_network(digits):
    """A group at learning rate 0 leaves its parameters where they started: with the whole
    network there, only the class weights train."""

    class Start:
        def on_train_begin(self, estimator):
            self.network = {k: v.clone() for k, v in estimator.module_.state_dict().items()}
            self.weights = estimator.loss_.weight.detach().clone()

    X, y = digits
    start = Start()
    model = fast(
        ArcFaceEmbedder,
        early_stopping=False,
        callbacks=[start],
        optimizer__param_groups=[("module_.*", {"lr": 0.0})],
    ).fit(X, y)
    assert model.n_iter_ == FAST["max_iter"]
    for name, value in model.module_.state_dict().items():
        if "running" not in name and "num_batches" not in name:  # batch norm's statistics
            torch.testing.assert_close(value, start.network[name], rtol=0, atol=0)
    assert not torch.equal(model.loss_.weight.detach(), start.weights)


def test_param_groups_are_parameters():
    specs = [("module_.0.*", {"lr_multiplier": 0.1})]
    model = TripletEmbedder(optimizer__param_groups=specs)
    assert clone(model).get_params()["optimizer__param_groups"] == specs


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        (
            "loss_.*",
            "TripletEmbedder: `optimizer__param_groups` must be a list of (pattern, options) "
            "pairs, got str.",
        ),
        (
            [("loss_.*", 10)],
            "TripletEmbedder: `optimizer__param_groups`[0] must be a (pattern, options) pair: "
            "a glob pattern over the parameter names (e.g. 'loss_.*', 'module_.0.*') and a "
            "dict of options (e.g. {'lr_multiplier': 10}), got ('loss_.*', 10).",
        ),
        (
            [("module_.*", {"lr_multiplier": -1})],
            "TripletEmbedder: `optimizer__param_groups`[0]: 'lr_multiplier' must be a "
            "positive number, got -1.",
        ),
        (
            [("backbone.*", {"lr_multiplier": 0.1})],
            "TripletEmbedder: `optimizer__param_groups[0]`'s pattern 'backbone.*' matches no "
            "parameter not already taken; the parameters are named module_.",
        ),
    ],
)
def test_bad_param_groups(digits, specs, message):
    X, y = digits
    model = fast(TripletEmbedder, optimizer__param_groups=specs)
    with pytest.raises(ValueError) as info:
        model.fit(X, y)
    assert str(info.value).startswith(message)
    assert not hasattr(model, "module_")  # no half-built model is left behind


def test_changed_param_groups_under_warm_start(digits):
    X, y = digits
    model = fast(TripletEmbedder, warm_start=True, max_iter=1).fit(X, y)
    model.set_params(optimizer__param_groups=[("module_.skip.*", {"lr_multiplier": 0.1})])
    with pytest.raises(ValueError, match="parameter groups differ from this fit's"):
        model.fit(X, y)
