"""Periodic training checkpoints (tensors + plain values only, so they load with weights_only=True)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError

PHASES = ("codec", "video")
_NAME = re.compile(r"ckpt-(codec|video)-(\d+)\.pt")


def checkpoint_order(path: Path) -> tuple[int, int]:
    m = _NAME.fullmatch(path.name)
    return (PHASES.index(m[1]), int(m[2])) if m else (-1, -1)


class Checkpoints:
    def __init__(self, folder: str | Path, keep: int):
        self.folder, self.keep = Path(folder), keep

    def existing(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted((p for p in self.folder.iterdir() if _NAME.fullmatch(p.name)), key=checkpoint_order)

    def latest(self) -> dict | None:
        found = self.existing()
        if not found:
            return None
        try:
            return torch.load(found[-1], map_location="cpu", weights_only=True)
        except Exception as exc:  # torch's own message advises weights_only=False (running the file's code)
            raise UserError(f"cannot read checkpoint {found[-1]} (damaged, empty, or it holds pickled objects other "
                            f"than tensors: {type(exc).__name__}); refusing to load it") from None

    def save(self, state: dict) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"ckpt-{state['phase']}-{state['step']:08d}.pt"
        tmp = path.with_suffix(".pt.tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)
        for old in self.existing()[: -self.keep]:
            old.unlink()
        return path


class EMA:
    """Exponential moving average of a module's parameters; buffers (noise schedule, statistics) are copied.

    The decay ramps up as min(decay, (1 + n) / (10 + n)) so short runs are not dominated by the init.
    """

    def __init__(self, module: nn.Module, decay: float):
        self.decay, self.updates = decay, 0
        self.averaged = {name for name, p in module.named_parameters() if p.dtype.is_floating_point}
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in module.state_dict().items():
            if k in self.averaged:
                self.state[k].lerp_(v.detach(), 1.0 - decay)
            else:
                self.state[k].copy_(v)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "state": self.state}

    def load_state_dict(self, d: dict) -> None:
        self.updates = int(d["updates"])
        self.state = {k: v.clone() for k, v in d["state"].items()}
