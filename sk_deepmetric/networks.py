"""Embedding networks: plain ``nn.Module``s that map a batch of inputs to embeddings.

The input shape is always given, never guessed from the data: :class:`MLP` takes the number of
input features, :class:`SignalResNet` the ``(channels, length)`` of one series,
:class:`ImageResNet` and :class:`ConvNet` the ``(channels, height, width)`` of one image.
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

from ._validation import check_reshape

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "ConvNet",
    "ImageResNet",
    "L2Normalize",
    "SignalResNet",
    "forked_rng",
    "reset_parameters",
]

#: Names accepted by ``activation=``.
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "leaky_relu": nn.LeakyReLU}


class L2Normalize(nn.Module):
    """Scale each row to unit Euclidean norm (a zero row stays zero)."""

    def forward(self, x: Tensor) -> Tensor:
        """``x`` with each row divided by its Euclidean norm."""
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
        """The embedding of a batch of rows, ``(batch_size, n_components)``."""
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
        """The embedding of a batch of images (or flat rows of ``input_shape``),
        ``(batch_size, n_components)``."""
        check_reshape(x.shape[1:], self.input_shape)
        return self.layers(x.reshape(x.shape[0], *self.input_shape))


class _ResidualBlock(nn.Module):
    """``Conv -> BN -> act -> ... -> Conv -> BN``, plus a shortcut, then the activation.

    The shortcut is the identity, or a 1x1 convolution with batch normalisation where the
    number of channels changes (He et al. 2016). The last batch normalisation of the branch
    starts at zero (Goyal et al. 2017), so that every block starts as its shortcut.
    """

    def __init__(
        self,
        dims: int,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int],
        activation: str,
    ) -> None:
        super().__init__()
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        norm = nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d
        layers: list[nn.Module] = []
        width = in_channels
        for i, k in enumerate(kernel_sizes):
            layers += [
                conv(width, out_channels, k, padding=k // 2, bias=False),
                norm(out_channels),
            ]
            if i < len(kernel_sizes) - 1:
                layers.append(ACTIVATIONS[activation]())
            width = out_channels
        self.branch = nn.Sequential(*layers)
        self.shortcut = (
            nn.Identity()
            if in_channels == out_channels
            else nn.Sequential(conv(in_channels, out_channels, 1, bias=False), norm(out_channels))
        )
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: Tensor) -> Tensor:
        """The block's output: the activation of branch plus shortcut."""
        return self.activation(self.branch(x) + self.shortcut(x))


class _ResNet(nn.Module):
    """Residual stages, max-pooling between them, global average pooling, a linear head.

    The subclasses fix the number of spatial dimensions (``_dims``) and the kernel sizes of a
    block (``_kernel_sizes``); see :class:`SignalResNet` and :class:`ImageResNet`.
    """

    _dims: int
    _kernel_sizes: tuple[int, ...]
    #: The last stage works on at most about this many positions per spatial dimension.
    _last_stage_size: int

    def __init__(
        self,
        input_shape: Sequence[int],
        n_components: int,
        channels: Sequence[int] = (32, 64, 128),
        activation: str = "relu",
        dropout: float = 0.0,
        normalize: bool = False,
        skip: bool = False,
    ) -> None:
        super().__init__()
        self.input_shape = tuple(int(d) for d in input_shape)
        if len(self.input_shape) != self._dims + 1:
            names = "(channels, length)" if self._dims == 1 else "(channels, height, width)"
            raise ValueError(f"`input_shape` must be {names}, got {self.input_shape}.")
        if not channels:
            raise ValueError("`channels` must hold at least one stage, got ().")
        size = min(self.input_shape[1:])
        factor = pooling_factor(size, len(channels), self._last_stage_size)
        stages: list[nn.Module] = []
        width = self.input_shape[0]
        for i, out_channels in enumerate(channels):
            stages.append(
                _ResidualBlock(self._dims, width, out_channels, self._kernel_sizes, activation)
            )
            if i < len(channels) - 1 and size > self._last_stage_size:
                pool = nn.MaxPool1d if self._dims == 1 else nn.MaxPool2d
                stages.append(pool(factor))
                size //= factor
            width = out_channels
        self.stages = nn.Sequential(*stages)
        self.head = nn.Sequential(nn.Dropout(dropout) if dropout > 0 else nn.Identity())
        self.head.append(nn.Linear(width, n_components))
        n_inputs = math.prod(self.input_shape)
        self.skip = nn.Linear(n_inputs, n_components, bias=False) if skip else None
        self.normalize = L2Normalize() if normalize else nn.Identity()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Default initialisation, the blocks' last batch normalisation at zero; with ``skip``,
        an orthogonal skip path and a zero head, so that the untrained embedding is the input
        rotated (as :meth:`MLP.reset_parameters`)."""
        generator = generator if generator is not None else torch.default_generator
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
                _reset_linear(module, generator)
            elif isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.reset_parameters()
        for module in self.modules():
            if isinstance(module, _ResidualBlock):
                nn.init.zeros_(module.branch[-1].weight)
        if self.skip is not None:
            nn.init.orthogonal_(self.skip.weight, generator=generator)
            nn.init.zeros_(self.head[-1].weight)
            nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        """The embedding of a batch of samples of ``input_shape`` (or flat rows of it),
        ``(batch_size, n_components)``."""
        check_reshape(x.shape[1:], self.input_shape)
        x = x.reshape(x.shape[0], *self.input_shape)
        features = self.stages(x).flatten(2).mean(dim=2)  # global average pooling
        out = self.head(features)
        if self.skip is not None:
            out = out + self.skip(x.flatten(1))
        return self.normalize(out)


def pooling_factor(size: int, n_stages: int, last_stage_size: int) -> int:
    """The max-pooling factor between stages: 2, or more for large inputs.

    The stages pool while the input is larger than ``last_stage_size`` (a small input is
    not pooled at all), by a factor chosen so that ``n_stages - 1`` poolings bring ``size``
    down to about ``last_stage_size``: the cost of a long series (or a large image) stays
    bounded, and the last stage's receptive field grows with the input.
    """
    if n_stages < 2 or size <= last_stage_size:
        return 2
    return max(2, math.ceil((size / last_stage_size) ** (1 / (n_stages - 1))))


class SignalResNet(_ResNet):
    """Residual 1-D CNN for signals and time series, ending in global average pooling.

    The residual network of Wang, Yan & Oates (2017), a strong baseline for time-series
    classification: each stage is a block of three convolutions (kernel sizes 7, 5 and 3,
    batch normalisation after each) with a shortcut. Global average pooling makes a pattern
    count wherever it occurs in the series. Unlike the original, which keeps the full
    length, series longer than 32 are max-pooled between stages, by 2 or more, until the
    last stage sees about 32 positions: the cost of a fit stays bounded on long series.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, length)`` of one series; inputs are reshaped to
        ``(n, channels, length)``, so flat rows of ``channels * length`` values work too.
    n_components : int
        Embedding size.
    channels : sequence of int, default=(32, 64, 128)
        Output channels of each stage.
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
    dropout : float, default=0.0
        Dropout probability before the final linear layer.
    normalize : bool, default=False
        L2-normalise the output.
    skip : bool, default=False
        Add a linear map of the flattened input to the output, as :class:`MLP` does; the
        embedding then starts as a rotation of the input. Off by default: it ties the
        embedding to where in the series a pattern lies.

    References
    ----------
    .. [1] Z. Wang, W. Yan, T. Oates, "Time Series Classification from Scratch with Deep
       Neural Networks: A Strong Baseline", IJCNN 2017.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.networks import SignalResNet
    >>> SignalResNet((2, 50), 16, channels=(4, 8))(torch.zeros(3, 2, 50)).shape
    torch.Size([3, 16])
    """

    _dims = 1
    _kernel_sizes = (7, 5, 3)
    _last_stage_size = 32


class ImageResNet(_ResNet):
    """Residual 2-D CNN for images, ending in global average pooling.

    Each stage is a residual block of two 3x3 convolutions with batch normalisation (He et
    al. 2016). Images larger than 8 x 8 are max-pooled between stages, by 2 or more, until
    the last stage sees about 8 x 8 positions. Global average pooling makes
    the embedding insensitive to small shifts, which is what an MLP on pixels lacks.

    Parameters
    ----------
    input_shape : tuple of int
        ``(channels, height, width)`` of one image; inputs are reshaped to
        ``(n, channels, height, width)``, so flat rows work too.
    n_components : int
        Embedding size.
    channels : sequence of int, default=(32, 64, 128)
        Output channels of each stage.
    activation : {"relu", "gelu", "tanh", "leaky_relu"}, default="relu"
    dropout : float, default=0.0
        Dropout probability before the final linear layer.
    normalize : bool, default=False
        L2-normalise the output.
    skip : bool, default=False
        Add a linear map of the flattened image to the output, as :class:`MLP` does; the
        embedding then starts as a rotation of the pixels.

    References
    ----------
    .. [1] K. He, X. Zhang, S. Ren, J. Sun, "Deep Residual Learning for Image Recognition",
       CVPR 2016.

    Examples
    --------
    >>> import torch
    >>> from sk_deepmetric.networks import ImageResNet
    >>> ImageResNet((1, 8, 8), 16, channels=(4, 8))(torch.zeros(2, 64)).shape
    torch.Size([2, 16])
    """

    _dims = 2
    _kernel_sizes = (3, 3)
    _last_stage_size = 8


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
        if isinstance(sub, MLP | _ResNet):  # knows its own initialisation
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
