"""Embedding networks: plain ``nn.Module``s that map a batch of inputs to embeddings.

The input shape is always given, never guessed from the data: :class:`MLP` takes the number of
input features, :class:`ConvNet` the ``(channels, height, width)`` of one image.
:func:`reset_parameters` re-initialises any module from a local ``torch.Generator``, so that an
estimator's weights depend only on its ``random_state`` and never on torch's global RNG.
"""

from __future__ import annotations

import contextlib
import inspect
import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ACTIVATIONS", "MLP", "ConvNet", "L2Normalize", "forked_rng", "reset_parameters"]

#: Names accepted by ``activation=``.
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


class L2Normalize(nn.Module):
    """Scale each row to unit Euclidean norm (a zero row stays zero)."""

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(x, p=2.0, dim=1)


class MLP(nn.Module):
    """Multi-layer perceptron: ``[Linear -> BatchNorm -> activation -> Dropout] * k -> Linear``.

    Inputs of any shape ``(n, *dims)`` are flattened to ``(n, prod(dims))``.

    Parameters
    ----------
    n_features : int
        Number of input features (``prod(dims)``).
    n_components : int
        Embedding size, the width of the last (linear) layer.
    hidden_layer_sizes : sequence of int, default=(256,)
        Width of each hidden layer; empty for a linear embedding.
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
    dropout : float, default=0.0
        Dropout probability after each hidden activation.
    batch_norm : bool, default=True
        Batch normalisation after each hidden linear layer.
    normalize : bool, default=False
        L2-normalise the output.
    skip : bool, default=False
        Add a linear map of the input to the output, ``W x + mlp(x)``: the embedding starts
        as a random projection, which keeps the input's geometry, and the hidden layers
        learn corrections to it.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.networks import MLP
    >>> MLP(10, 4, hidden_layer_sizes=(8,))(torch.zeros(3, 10)).shape
    torch.Size([3, 4])
    """

    def __init__(
        self,
        n_features: int,
        n_components: int,
        hidden_layer_sizes: Sequence[int] = (256,),
        activation: str = "relu",
        dropout: float = 0.0,
        batch_norm: bool = True,
        normalize: bool = False,
        skip: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = n_features
        for size in hidden_layer_sizes:
            layers.append(nn.Linear(width, size, bias=not batch_norm))
            if batch_norm:
                layers.append(nn.BatchNorm1d(size))
            layers.append(ACTIVATIONS[activation]())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, n_components))
        self.layers = nn.Sequential(*layers)
        self.skip = nn.Linear(n_features, n_components, bias=False) if skip else None
        self.normalize = L2Normalize() if normalize else nn.Identity()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Default initialisation; with ``skip``, start as an orthogonal projection of the input.

        The skip path gets a (semi-)orthogonal matrix, which keeps the input's distances when
        ``n_components >= n_features``, and the hidden path's last layer starts at zero, so the
        untrained embedding is the input rotated and training learns corrections to it.
        """
        generator = generator if generator is not None else torch.default_generator
        for layer in self.layers:
            if isinstance(layer, nn.Linear):
                _reset_linear(layer, generator)
            elif isinstance(layer, nn.BatchNorm1d):
                layer.reset_parameters()
        if self.skip is not None:
            nn.init.orthogonal_(self.skip.weight, generator=generator)
            last = self.layers[-1]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.layers(x)
        if self.skip is not None:
            out = out + self.skip(x.flatten(1))
        return self.normalize(out)


class ConvNet(nn.Module):
    """Small convolutional network for images, ending in global average pooling.

    Each stage is ``Conv3x3 -> BatchNorm -> activation``; a 2x2 max-pool follows every stage
    but the last while the image is still at least 4 pixels wide. Global average pooling makes
    the embedding insensitive to small shifts, which is what an MLP on pixels lacks.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; inputs are reshaped to
        ``(n, channels, height, width)``, so flat rows of ``prod(input_shape)`` values work too.
    n_components : int
        Embedding size.
    channels : sequence of int, default=(32, 64, 128)
        Output channels of each convolutional stage.
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
    dropout : float, default=0.0
        Dropout probability before the final linear layer.
    normalize : bool, default=False
        L2-normalise the output.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.networks import ConvNet
    >>> ConvNet((1, 8, 8), 16, channels=(4, 8))(torch.zeros(2, 64)).shape
    torch.Size([2, 16])
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        n_components: int,
        channels: Sequence[int] = (32, 64, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        normalize: bool = False,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != 3:
            raise ValueError(
                f"`input_shape` must be (channels, height, width), got {self.input_shape}."
            )
        layers: list[nn.Module] = []
        in_channels, size = self.input_shape[0], min(self.input_shape[1:])
        for i, out_channels in enumerate(channels):
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                ACTIVATIONS[activation](),
            ]
            if i < len(channels) - 1 and size >= 4:
                layers.append(nn.MaxPool2d(2))
                size //= 2
            in_channels = out_channels
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(in_channels, n_components))
        if normalize:
            layers.append(L2Normalize())
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x.reshape(x.shape[0], *self.input_shape))


def reset_parameters(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-initialise every parameter of ``module`` from ``generator``, in place.

    Linear and convolutional layers get PyTorch's default initialisation (Kaiming-uniform
    weights, uniform bias), normalisation layers ones and zeros, drawn from ``generator``.
    Any other submodule with a ``reset_parameters`` method (a user's layer, a loss's class
    weights) is called with ``generator=`` when it accepts it; otherwise it runs under a
    forked global RNG seeded from ``generator``, so torch's global state is left untouched.

    Returns ``module`` for chaining.
    """
    done: set[int] = set()
    for sub in module.modules():
        if id(sub) in done:
            continue
        if isinstance(sub, MLP):  # knows its own initialisation (the skip path's)
            sub.reset_parameters(generator)
            done.update(id(m) for m in sub.modules())
        elif isinstance(sub, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            _reset_linear(sub, generator)
        elif isinstance(sub, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
            sub.reset_parameters()  # deterministic: ones, zeros, and running stats
        elif callable(getattr(sub, "reset_parameters", None)):
            _reset_other(sub, generator)
    return module


def _reset_linear(layer: nn.Module, generator: torch.Generator) -> None:
    # Same distribution as nn.Linear / nn.ConvNd.reset_parameters, from a local generator.
    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
    if layer.bias is not None:
        fan_in = layer.weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)


def _reset_other(sub: nn.Module, generator: torch.Generator) -> None:
    if "generator" in inspect.signature(sub.reset_parameters).parameters:
        sub.reset_parameters(generator=generator)
        return
    with forked_rng(int(torch.randint(2**62, (1,), generator=generator))):
        sub.reset_parameters()


@contextlib.contextmanager
def forked_rng(seed: int) -> Iterator[None]:
    """Seed torch's global RNGs with ``seed`` inside the block, and restore them on exit.

    For code that can only draw from the global RNG (dropout, a user's ``reset_parameters``):
    it becomes deterministic given ``seed`` and the caller's global state is left untouched.
    """
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
