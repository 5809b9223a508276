import re

import pytest
import torch
from torch import nn

from sk_deepmetric.networks import (
    MLP,
    ConvNet,
    ImageResNet,
    L2Normalize,
    SignalResNet,
    forked_rng,
    pooling_factor,
    reset_parameters,
)


def randn(*shape):
    """Seeded inputs: the same on every run (float32 draws may differ by ulps across CPUs)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(0))


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def test_mlp_layers_and_shapes():
    net = MLP(12, 5, hidden_layer_sizes=(8, 6), activation="gelu", dropout=0.1)
    assert net(randn(4, 12)).shape == (4, 5)
    assert net(randn(4, 3, 4)).shape == (4, 5)  # flattened
    kinds = [type(m).__name__ for m in net.layers]
    assert kinds == [
        "Flatten",
        "Linear",
        "BatchNorm1d",
        "GELU",
        "Dropout",
        "Linear",
        "BatchNorm1d",
        "GELU",
        "Dropout",
        "Linear",
    ]


def test_mlp_without_hidden_layers_is_linear():
    net = MLP(3, 2, hidden_layer_sizes=(), batch_norm=False)
    x = randn(5, 3)
    lin = net.layers[1]
    torch.testing.assert_close(net(x), x @ lin.weight.T + lin.bias)


def test_normalize_gives_unit_rows():
    net = MLP(6, 3, hidden_layer_sizes=(4,), normalize=True).eval()
    norms = net(randn(7, 6)).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(7))
    assert torch.equal(L2Normalize()(torch.zeros(2, 3)), torch.zeros(2, 3))


@pytest.mark.parametrize("shape", [(2, 64), (2, 1, 8, 8), (2, 8, 8)])
def test_convnet_accepts_flat_or_image_input(shape):
    net = ConvNet((1, 8, 8), 16, channels=(4, 8)).eval()
    assert net(randn(*shape)).shape == (2, 16)


def test_convnet_is_insensitive_to_small_shifts_more_than_mlp():
    # Global average pooling: a constant image shifted stays nearly the same embedding.
    net = ConvNet((1, 12, 12), 8, channels=(4,)).eval()
    img = torch.zeros(1, 1, 12, 12)
    img[..., 4:7, 4:7] = 1.0
    shifted = torch.roll(img, 1, dims=-1)
    torch.testing.assert_close(net(img), net(shifted))


def test_convnet_rejects_bad_input_shape():
    with pytest.raises(ValueError, match=r"`input_shape` must be \(channels, height, width\)"):
        ConvNet((8, 8), 4)


def test_reset_parameters_is_seeded_and_leaves_global_rng_alone():
    net_a, net_b = MLP(5, 3, (4,)), ConvNet((1, 6, 6), 3, channels=(2,))
    state = torch.get_rng_state()
    first = [
        _params(reset_parameters(n, torch.Generator().manual_seed(0))) for n in (net_a, net_b)
    ]
    again = [
        _params(reset_parameters(n, torch.Generator().manual_seed(0))) for n in (net_a, net_b)
    ]
    other = _params(reset_parameters(net_a, torch.Generator().manual_seed(1)))
    assert torch.equal(state, torch.get_rng_state())
    for p, q in zip(first, again):
        assert all(torch.equal(a, b) for a, b in zip(p, q))
    assert not all(torch.equal(a, b) for a, b in zip(first[0], other))


def test_reset_parameters_calls_custom_layers():
    class WithGenerator(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(3))

        def reset_parameters(self, generator=None):
            with torch.no_grad():
                self.w.copy_(torch.rand(3, generator=generator))

    class GlobalOnly(WithGenerator):
        def reset_parameters(self):
            with torch.no_grad():
                self.w.copy_(torch.rand(3))

    net = nn.Sequential(WithGenerator(), GlobalOnly())
    state = torch.get_rng_state()
    a = _params(reset_parameters(net, torch.Generator().manual_seed(0)))
    b = _params(reset_parameters(net, torch.Generator().manual_seed(0)))
    assert torch.equal(state, torch.get_rng_state())
    assert all(torch.equal(x, y) and x.abs().sum() > 0 for x, y in zip(a, b))


def test_forked_rng_restores_global_state():
    state = torch.get_rng_state()
    with forked_rng(3):
        first = torch.rand(2)
    with forked_rng(3):
        second = torch.rand(2)
    assert torch.equal(first, second)
    assert torch.equal(state, torch.get_rng_state())


def test_mlp_skip_starts_as_a_rotation_of_the_input():
    net = reset_parameters(MLP(6, 8, hidden_layer_sizes=(5,), skip=True), torch.Generator())
    x = randn(7, 6)
    out = net.eval()(x)
    torch.testing.assert_close(torch.cdist(out, out), torch.cdist(x, x), atol=1e-5, rtol=1e-5)
    assert torch.count_nonzero(net.layers[-1].weight) == 0  # the MLP path starts at zero


def test_mlp_skip_adds_a_linear_path_and_is_seeded():
    def make(seed):
        return reset_parameters(MLP(4, 3, (5,), skip=True), torch.Generator().manual_seed(seed))

    a, b, c = make(0), make(0), make(1)
    torch.testing.assert_close(a.skip.weight, b.skip.weight)
    assert not torch.equal(a.skip.weight, c.skip.weight)
    with torch.no_grad():
        a.layers[-1].weight.normal_()
    x = randn(6, 4)
    a.eval()
    torch.testing.assert_close(a(x), a.layers(x) + x @ a.skip.weight.T)


# ----------------------------------------------------------------- the residual CNNs


@pytest.mark.parametrize(
    ("cls", "input_shape", "shapes"),
    [
        (SignalResNet, (2, 30), [(3, 60), (3, 2, 30)]),
        (SignalResNet, (1, 30), [(3, 30), (3, 1, 30)]),
        (ImageResNet, (1, 8, 8), [(3, 64), (3, 8, 8), (3, 1, 8, 8)]),
    ],
)
def test_resnets_accept_flat_or_shaped_input(cls, input_shape, shapes):
    net = cls(input_shape, 5, channels=(4, 8)).eval()
    for shape in shapes:
        assert net(randn(*shape)).shape == (3, 5)


@pytest.mark.parametrize(
    ("cls", "shape", "message"),
    [
        (SignalResNet, (1, 8, 8), "`input_shape` must be (channels, length), got (1, 8, 8)."),
        (ImageResNet, (1, 64), "`input_shape` must be (channels, height, width), got (1, 64)."),
    ],
)
def test_resnets_reject_bad_input_shape(cls, shape, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        cls(shape, 4)


@pytest.mark.parametrize(
    ("net", "shape", "match"),
    [
        (ConvNet((3, 8, 8), 4), (2, 8, 8, 3), r"np.moveaxis\(X, -1, 1\) puts channels first"),
        (ImageResNet((3, 8, 8), 4), (2, 8, 3, 8), "does not move axes.$"),
        (SignalResNet((2, 30), 4), (2, 30, 2), "cannot make \\(2, 30\\)"),
        (ConvNet((1, 8, 8), 4), (2, 65), r"holds 64 values per sample, .* \(65 values\)"),
    ],
)
def test_cnns_refuse_input_a_reshape_would_scramble(net, shape, match):
    with pytest.raises(ValueError, match=match):
        net(randn(*shape))


def test_resnet_blocks_start_as_their_shortcut():
    # the branch's last batch normalisation starts at zero, so block(x) = act(shortcut(x))
    net = reset_parameters(SignalResNet((3, 20), 4, channels=(3, 6)), torch.Generator())
    net.eval()
    x = randn(5, 3, 20)
    first, second = net.stages  # 20 <= 32 positions: no pooling between them
    torch.testing.assert_close(first(x), torch.relu(x))  # identity shortcut: 3 -> 3 channels
    h = first(x)
    torch.testing.assert_close(second(h), torch.relu(second.shortcut(h)))


@pytest.mark.parametrize("cls, input_shape", [(SignalResNet, (2, 16)), (ImageResNet, (1, 6, 6))])
def test_resnet_skip_starts_as_a_rotation_of_the_input(cls, input_shape):
    net = reset_parameters(cls(input_shape, 48, channels=(4,), skip=True), torch.Generator())
    x = randn(7, *input_shape)
    flat = x.flatten(1)
    out = net.eval()(x)
    torch.testing.assert_close(out, flat @ net.skip.weight.T)
    # orthogonal columns (n_components >= inputs): distances are kept
    torch.testing.assert_close(torch.cdist(out, out), torch.cdist(flat, flat))


def test_signal_resnet_is_invariant_to_shifts_by_its_pooling_factor():
    # Away from the ends, shifting the input by the product of the poolings (3 x 3) shifts
    # every feature map by whole positions, and global average pooling sums the same values.
    net = reset_parameters(SignalResNet((1, 256), 6, channels=(4, 4, 4)), torch.Generator())
    pools = [m.kernel_size for m in net.stages if isinstance(m, torch.nn.MaxPool1d)]
    assert pools == [3, 3]  # 256 -> 85 -> 28 positions
    for block in net.modules():  # give the branches weight, so that they count
        if isinstance(block, torch.nn.BatchNorm1d):
            torch.nn.init.ones_(block.weight)
    net.eval()
    signal = torch.zeros(1, 1, 256)
    signal[..., 120:128] = torch.randn(8, generator=torch.Generator().manual_seed(0))
    shifted = torch.roll(signal, 9, dims=-1)
    torch.testing.assert_close(net(signal), net(shifted))


@pytest.mark.parametrize(
    ("size", "n_stages", "last", "factor"),
    [
        (128, 3, 64, 2),
        (1460, 3, 64, 5),
        (25, 3, 64, 2),
        (8, 3, 8, 2),
        (112, 3, 8, 4),
        (500, 1, 64, 2),
    ],
)
def test_pooling_factor_bounds_the_last_stage(size, n_stages, last, factor):
    assert pooling_factor(size, n_stages, last) == factor
    if n_stages > 1 and size > last:
        assert size // factor ** (n_stages - 1) <= last
