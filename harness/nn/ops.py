"""Candidate operations of the DARTS-family spaces and of NAS-Bench-201 (SPEC-FACTS §1.4, §2.1, §3.1).

Search networks build every op with ``affine=False`` BatchNorm (and, in the DARTS spaces, a BN after
each pooling op); evaluation networks use ``affine=True`` and no BN after pooling.
"""

from __future__ import annotations

import torch
from torch import nn

from harness.errors import unknown


class Zero(nn.Module):
    """``none``: zeros of the (strided) input's shape."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class Noise(nn.Module):
    """``noise`` (RobustDARTS S4): i.i.d. N(0, 1) of the (strided) input's shape; no gradient to x."""

    def __init__(self, stride: int, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.stride, self.mean, self.std = stride, mean, std

    def forward(self, x):
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        return torch.randn_like(x.detach()).mul_(self.std).add_(self.mean)


class Identity(nn.Module):
    def forward(self, x):
        return x


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True, dilation=1):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding, dilation=dilation, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU -> depthwise k x k (dilation d) -> pointwise 1x1 -> BN."""

    def __init__(self, c_in, c_out, kernel, stride, padding, dilation, affine=True):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel, stride=stride, padding=padding, dilation=dilation, groups=c_in,
                      bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked DilConv(dilation 1) blocks; the stride is taken in the first."""

    def __init__(self, c_in, c_out, kernel, stride, padding, affine=True):
        super().__init__(
            DilConv(c_in, c_in, kernel, stride, padding, 1, affine),
            DilConv(c_in, c_out, kernel, 1, padding, 1, affine),
        )


class FactorizedReduce(nn.Module):
    """ReLU, two 1x1 stride-2 convs (the second on the input shifted by one pixel), concat, BN."""

    def __init__(self, c_in, c_out, affine=True):
        super().__init__()
        assert c_out % 2 == 0, "FactorizedReduce needs an even number of output channels"
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        if shifted.shape[-1] < 1 or shifted.shape[-2] < 1:
            shifted = x
        a = self.conv_1(x)
        b = self.conv_2(shifted)
        if b.shape[-2:] != a.shape[-2:]:  # odd sizes: pad the shifted branch back to the same grid
            b = nn.functional.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        return self.bn(torch.cat([a, b], dim=1))


DARTS_OPS = ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect", "sep_conv_3x3", "sep_conv_5x5",
             "dil_conv_3x3", "dil_conv_5x5")
DARTS_EXTRA_OPS = ("noise",)
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
PARAMETER_FREE = frozenset({"none", "noise", "skip_connect", "max_pool_3x3", "avg_pool_3x3"})


def darts_op(name: str, channels: int, stride: int, *, affine: bool, search: bool) -> nn.Module:
    """One op of the DARTS family (S0-S4). ``search`` adds BN(affine=False) after pooling."""
    c = channels
    if name == "none":
        return Zero(stride)
    if name == "noise":
        return Noise(stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        pool = (nn.MaxPool2d(3, stride=stride, padding=1) if name == "max_pool_3x3"
                else nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False))
        return nn.Sequential(pool, nn.BatchNorm2d(c, affine=False)) if search else pool
    if name == "sep_conv_3x3":
        return SepConv(c, c, 3, stride, 1, affine)
    if name == "sep_conv_5x5":
        return SepConv(c, c, 5, stride, 2, affine)
    if name == "dil_conv_3x3":
        return DilConv(c, c, 3, stride, 2, 2, affine)
    if name == "dil_conv_5x5":
        return DilConv(c, c, 5, stride, 4, 2, affine)
    raise unknown("DARTS-space op", name, DARTS_OPS + DARTS_EXTRA_OPS)


def nb201_op(name: str, channels: int, stride: int, *, affine: bool, search: bool) -> nn.Module:
    """One op of NAS-Bench-201; convs have no bias (darts-pt's choice, SPEC-FACTS §6.4)."""
    c = channels
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(c, c, affine=affine)
    if name == "nor_conv_1x1":
        return ReLUConvBN(c, c, 1, stride, 0, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(c, c, 3, stride, 1, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    raise unknown("NAS-Bench-201 op", name, NB201_OPS)
