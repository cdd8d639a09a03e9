"""Network registry and the two architectures (shapes, whitening init, clear errors)."""

import pytest
import torch

from storage_scaling.learn import models


def test_unknown_network_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown network 'resnet999'.*airnet"):
        models.create("resnet999", 10)


@pytest.mark.parametrize("name,size", [("airnet_small", 32), ("airnet", 32), ("airnet_small", 64),
                                       ("resnet10_64", 64), ("resnet18_64", 64),
                                       ("cnn_cpu", 32), ("cnn_cpu", 64)])
def test_forward_shapes(name, size):
    torch.manual_seed(0)
    net = models.create(name, 7).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()


def test_registry_sizes_and_timm_flags():
    assert models.NETWORKS["airnet"].image_size == 32
    assert models.NETWORKS["resnet18_64"].image_size == 64 and models.NETWORKS["resnet18_64"].timm
    net = models.create("resnet18_64", 101)
    assert isinstance(net.maxpool, torch.nn.Identity)
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (2, 2)
    assert models.create("resnet18_64_s1", 101).conv1.stride == (1, 1)
    assert models.parameter_count(net) > 10_000_000


def test_our_nets_have_no_pretrained_weights():
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.create("airnet", 10, pretrained=True)
    with pytest.raises(ValueError, match="num_classes"):
        models.create("airnet", 1)


def test_whitening_init_decorrelates_patches():
    torch.manual_seed(0)
    # correlated channels: a shared component plus small noise
    base = torch.randn(64, 1, 16, 16)
    x = torch.cat([base + 0.1 * torch.randn(64, 1, 16, 16) for _ in range(3)], dim=1)
    net = models.create("airnet_small", 10)
    net.init_whitening(x)
    with torch.no_grad():
        y = torch.nn.functional.conv2d(x, net.whiten.weight[:12])  # the positive half
    flat = y.permute(1, 0, 2, 3).reshape(12, -1)
    cov = flat @ flat.T / flat.shape[1]
    # whitened: unit variance, no correlation (eps keeps the smallest directions slightly below 1)
    assert torch.allclose(torch.diag(cov), torch.ones(12), atol=0.1)
    off = cov - torch.diag(torch.diag(cov))
    assert off.abs().max() < 0.1
    assert not net.whiten.weight.requires_grad


def test_cnn_cpu_is_small_and_plain():
    net = models.create("cnn_cpu", 10)
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 32, 64, 64, 128, 128]
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()) == 6
    assert models.parameter_count(net) == 288_746  # six 3x3 convs, six batch norms, a 128x10 head
    # each group pools right after its first conv: 32 -> 16 -> 8 -> 4 px before the global pool
    with torch.no_grad():
        assert net.features(torch.zeros(1, 3, 32, 32)).shape == (1, 128, 4, 4)
    with pytest.raises(ValueError, match="no pretrained weights"):
        models.create("cnn_cpu", 10, pretrained=True)
