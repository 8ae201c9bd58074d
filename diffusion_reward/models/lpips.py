"""LPIPS perceptual distance (Zhang et al. 2018), VGG16 variant, built from a local weights file only.

Nothing is ever downloaded. The file holds both the VGG16 convolution weights and the five linear
calibration layers, in either of the two layouts users already have:
- torchvision / richzhang `lpips`: `features.<i>.weight|bias` (or `net.slice<k>.<i>.*`) and `lin<k>.model.1.weight`
- this module's own state dict: `features.<i>.*`, `lins.<k>.weight`
as a `.safetensors` file or a torch file (loaded with `weights_only=True`).
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError

# VGG16 `features` layout: conv widths, "M" = 2x2 max-pool. LPIPS taps relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
_TAPS = (3, 8, 15, 22, 29)  # indices (in torchvision's `features`) of the ReLUs whose outputs are compared
_TAP_CHANNELS = (64, 128, 256, 512, 512)


class LPIPS(nn.Module):
    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for v in _VGG16:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, v, 3, padding=1), nn.ReLU()]
                channels = v
        self.features = nn.Sequential(*layers)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _TAP_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    @classmethod
    def from_file(cls, path: str | Path) -> "LPIPS":
        net = cls()
        net.load_state_dict(_canonical_state_dict(_read_weights(Path(path)), net))
        return net

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """a, b: [B,3,H,W] in [-1, 1] -> [B] perceptual distance."""
        fa, fb = self._taps((a - self.shift) / self.scale), self._taps((b - self.shift) / self.scale)
        dist = 0.0
        for lin, x, y in zip(self.lins, fa, fb):
            diff = (_unit(x) - _unit(y)) ** 2
            dist = dist + lin(diff).mean(dim=(1, 2, 3))
        return dist

    def _taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                out.append(x)
                if i == _TAPS[-1]:
                    break
        return out


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10)


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"LPIPS weights file {path} does not exist.")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, or a pickle that needs more than tensors; torch's own message
        # advises weights_only=False (running the file's code): never quoted
        raise UserError(f"cannot read LPIPS weights {path} (damaged, empty, or it holds pickled objects other than "
                        f"tensors: {type(exc).__name__}); refusing to load it") from None
    if not isinstance(state, dict):
        raise UserError(f"LPIPS weights {path} do not hold a state dict.")
    return state


def _canonical_state_dict(state: dict[str, torch.Tensor], net: LPIPS) -> dict[str, torch.Tensor]:
    """Map the known key layouts onto this module's names; UserError if anything is missing."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = re.sub(r"^(module\.|perceptual_loss\.)", "", key)
        if m := re.fullmatch(r"(?:net\.)?(?:features|slice\d)\.(\d+)\.(weight|bias)", key.replace("net.slice", "slice")):
            out[f"features.{m[1]}.{m[2]}"] = value
        elif m := re.fullmatch(r"lins?\.?(\d)(?:\.model\.1)?\.weight", key):
            out[f"lins.{m[1]}.weight"] = value
    expected = {k for k in net.state_dict() if k not in ("shift", "scale")}
    missing = sorted(expected - out.keys())
    if missing:
        raise UserError(
            f"LPIPS weights lack {len(missing)} tensors (e.g. {missing[0]}); the file needs the VGG16 "
            "`features.*` convolutions and the five `lin*` layers."
        )
    for k in expected:
        if out[k].shape != net.state_dict()[k].shape:
            raise UserError(f"LPIPS weight {k} has shape {tuple(out[k].shape)}, expected {tuple(net.state_dict()[k].shape)}.")
    return {k: out[k] for k in expected} | {"shift": net.shift, "scale": net.scale}
