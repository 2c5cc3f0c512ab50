"""The book's chapter 13 segmentation model in PyTorch, for cross-checks
with the Rust `train::model::UNet`: `UNetWrapper` (p2ch13/model.py) around
the U-Net of util/unet.py (after jvanvugt/pytorch-unet), written out here
with the same module names, so `state_dict` keys are the book's.

    from unet_model import UNetWrapper
    m = UNetWrapper(in_channels=7, n_classes=1, depth=3, wf=4, padding=True,
                    batch_norm=True, up_mode='upconv')
"""

import math

import torch
import torch.nn.functional as F
from torch import nn


class ConvBlock(nn.Module):
    """conv 3x3 -> LeakyReLU -> BatchNorm, twice (`block.{0,2,3,5}`)."""

    def __init__(self, c_in, c_out, padding, batch_norm):
        super().__init__()
        layers = [nn.Conv2d(c_in, c_out, 3, padding=int(padding)), nn.LeakyReLU()]
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        layers += [nn.Conv2d(c_out, c_out, 3, padding=int(padding)), nn.LeakyReLU()]
        if batch_norm:
            layers.append(nn.BatchNorm2d(c_out))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return self.block(x)


class UpBlock(nn.Module):
    """2x2 stride-2 transposed conv, the skip centre-cropped and
    concatenated after it, then a conv block."""

    def __init__(self, c_in, c_out, padding, batch_norm):
        super().__init__()
        self.up = nn.ConvTranspose2d(c_in, c_out, kernel_size=2, stride=2)
        self.conv_block = ConvBlock(c_in, c_out, padding, batch_norm)

    def forward(self, x, bridge):
        up = self.up(x)
        h, w = up.shape[2:]
        dy, dx = (bridge.shape[2] - h) // 2, (bridge.shape[3] - w) // 2
        return self.conv_block(torch.cat([up, bridge[:, :, dy:dy + h, dx:dx + w]], 1))


class UNet(nn.Module):
    def __init__(self, in_channels, n_classes, depth, wf, padding, batch_norm, up_mode="upconv"):
        super().__init__()
        assert up_mode == "upconv"
        prev = in_channels
        self.down_path = nn.ModuleList()
        for i in range(depth):
            self.down_path.append(ConvBlock(prev, 2 ** (wf + i), padding, batch_norm))
            prev = 2 ** (wf + i)
        self.up_path = nn.ModuleList()
        for i in reversed(range(depth - 1)):
            self.up_path.append(UpBlock(prev, 2 ** (wf + i), padding, batch_norm))
            prev = 2 ** (wf + i)
        self.last = nn.Conv2d(prev, n_classes, kernel_size=1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.down_path):
            x = down(x)
            if i != len(self.down_path) - 1:
                skips.append(x)
                x = F.avg_pool2d(x, 2)
        for i, up in enumerate(self.up_path):
            x = up(x, skips[-i - 1])
        return self.last(x)


class UNetWrapper(nn.Module):
    def __init__(self, **kwargs):
        super().__init__()
        self.input_batchnorm = nn.BatchNorm2d(kwargs["in_channels"])
        self.unet = UNet(**kwargs)
        self.final = nn.Sigmoid()
        for m in self.modules():
            if type(m) in (nn.Conv2d, nn.ConvTranspose2d):
                nn.init.kaiming_normal_(m.weight.data, mode="fan_out", nonlinearity="relu", a=0)
                _, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight.data)
                bound = 1 / math.sqrt(fan_out)
                nn.init.normal_(m.bias, -bound, bound)

    def forward(self, x):
        return self.final(self.unet(self.input_batchnorm(x)))
