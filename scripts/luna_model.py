"""The book's LunaModel (chapters 11-12) in PyTorch, under the same
state_dict names the Rust `train` writes to `model.safetensors`
(`tail_batchnorm.*`, `block1.conv1.*` ... `block4.conv2.*`, `head_linear.*`).

    from luna_model import LunaModel, load_safetensors, save_safetensors
    model = load_safetensors("runs/.../model.safetensors")   # eval mode
    logits, probs = model(batch)                              # batch [N,1,32,48,48] HU
    save_safetensors(model, "model.safetensors")              # loads in Rust
"""

import math
import os

import torch
from torch import nn

# 64 channels x (32/16) x (48/16) x (48/16) after four 2x poolings.
FLAT_FEATURES = 64 * 2 * 3 * 3


class LunaBlock(nn.Module):
    def __init__(self, in_channels, conv_channels):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, conv_channels, kernel_size=3, padding=1, bias=True)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(conv_channels, conv_channels, kernel_size=3, padding=1, bias=True)
        self.relu2 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(2, 2)

    def forward(self, x):
        return self.maxpool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))


class LunaModel(nn.Module):
    """`bias_init="uniform"` draws biases from U(-1/sqrt(fan_out), +1/sqrt(fan_out)),
    what the book meant; `"book"` reproduces its `normal_(bias, -bound, bound)` bug
    (mean -bound, std bound), like the Rust `BiasInit::Book`."""

    def __init__(self, in_channels=1, conv_channels=8, bias_init="uniform"):
        super().__init__()
        self.tail_batchnorm = nn.BatchNorm3d(1)
        self.block1 = LunaBlock(in_channels, conv_channels)
        self.block2 = LunaBlock(conv_channels, conv_channels * 2)
        self.block3 = LunaBlock(conv_channels * 2, conv_channels * 4)
        self.block4 = LunaBlock(conv_channels * 4, conv_channels * 8)
        self.head_linear = nn.Linear(FLAT_FEATURES, 2)
        self.head_softmax = nn.Softmax(dim=1)
        self._init_weights(bias_init)

    def _init_weights(self, bias_init):
        if bias_init not in ("uniform", "book"):
            raise ValueError(f"bias_init must be 'uniform' or 'book', not {bias_init!r}")
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight.data, a=0, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    _, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight.data)
                    bound = 1 / math.sqrt(fan_out)
                    if bias_init == "book":
                        nn.init.normal_(m.bias, -bound, bound)
                    else:
                        nn.init.uniform_(m.bias, -bound, bound)

    def forward(self, x):
        x = self.tail_batchnorm(x)
        x = self.block4(self.block3(self.block2(self.block1(x))))
        logits = self.head_linear(x.flatten(1))  # reshape: channels-last input cannot be viewed
        return logits, self.head_softmax(logits)


def load_safetensors(path, device="cpu"):
    """A LunaModel with the weights of a `model.safetensors` (Rust- or
    PyTorch-written), strictly checked, in eval mode."""
    from safetensors.torch import load_file

    model = LunaModel()
    state = load_file(os.fspath(path), device=str(device))
    # tch keeps no BatchNorm step counter; files without it still load.
    state.setdefault("tail_batchnorm.num_batches_tracked", torch.tensor(0, dtype=torch.int64))
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def save_safetensors(model, path):
    """Writes `model`'s state_dict (unwrapping DDP) atomically: temp file, fsync, rename."""
    from safetensors.torch import save_file

    model = getattr(model, "module", model)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    path = os.fspath(path)
    tmp = path + ".tmp"
    save_file(state, tmp, metadata={"format": "pt"})
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
