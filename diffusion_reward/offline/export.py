"""Export a trained policy for the robot: TorchScript (and ONNX) with all preprocessing baked in.

The exported module is `forward(image: uint8[B,K,H,W,3], state: float32[B,D]) -> float32[B,A]`:
K frames oldest first (the runner repeats the first frame after a reset, as in training), HWC -> CHW
channel stack, /255, state standardisation, the policy network, action un-scaling to [-1, 1]. Inputs the
policy does not use are ignored (the ONNX graph drops them: feed only the inputs it lists). Loading the
TorchScript needs torch only:

    policy = torch.jit.load("export/policy.ts"); action = policy(image_u8, state_f32)
"""
from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
import torch.nn as nn


from .policy_folder import PolicySpec


class ExportedPolicy(nn.Module):
    """Raw robot observations -> actions, around a d3rlpy algorithm's greedy policy."""

    def __init__(self, algo, obs: str):
        super().__init__()
        self.obs = obs
        # registered as submodules so tracing stores the weights as parameters of this module
        self.networks = nn.ModuleDict(algo.impl.modules.get_torch_modules())
        self._algo = algo

    def forward(self, image: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        parts = []
        if self.obs in ("image", "both"):
            b, k, h, w, c = image.shape
            parts.append(image.permute(0, 1, 4, 2, 3).reshape(b, k * c, h, w).float())  # [B, 3K, H, W]
        if self.obs in ("state", "both"):
            parts.append(state.float())
        observation = parts[0] if len(parts) == 1 else parts
        config = self._algo.config
        if config.observation_scaler is not None:
            observation = config.observation_scaler.transform(observation)
        action = self._algo.impl.predict_best_action(observation)
        if config.action_scaler is not None:
            action = config.action_scaler.reverse_transform(action)
        return action


def example_inputs(meta: dict, batch: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    size = meta.get("image_size") or 64
    image = torch.zeros(batch, meta["frame_stack"], size, size, 3, dtype=torch.uint8)
    state = torch.zeros(batch, meta.get("state_dim") or 1, dtype=torch.float32)
    return image, state


def export_policy(policy_dir: str | Path, out_dir: str | Path, onnx: bool = False,
                  checkpoint: str | None = None) -> Path:
    """Write `out_dir/policy.ts` (+ `policy.onnx`) and `out_dir/policy.json`; returns out_dir."""
    from .train_policy import load_policy

    out_dir = Path(out_dir)
    algo, meta = load_policy(policy_dir, device="cpu", checkpoint=checkpoint)
    module = ExportedPolicy(algo, meta["obs"]).eval().requires_grad_(False)
    algo.impl.modules.set_eval()  # no random shift, no dropout in the exported graph
    inputs = example_inputs(meta, batch=2)
    exported = PolicySpec.from_meta(meta, Path(policy_dir) / "policy.json").to_dict()
    exported["training_reset_seeds"] = meta.get("dataset", {}).get("reset_seeds", [])  # "seen" layouts
    exported["weights"] = str(Path(policy_dir).resolve() / (checkpoint or meta["model"]))
    exported["files"] = {"torchscript": "policy.ts"}
    exported["inputs"] = {"image": "uint8[B,K,H,W,3] RGB, K = frame_stack, oldest first",
                          "state": "float32[B,state_dim]"}
    out_dir.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # d3rlpy's shape asserts become constants
        traced = torch.jit.trace(module, inputs, check_trace=False)
        _atomic(out_dir / "policy.ts", lambda p: traced.save(str(p)))
        if onnx:
            _atomic(out_dir / "policy.onnx", lambda p: _export_onnx(module, inputs, p))
            exported["files"]["onnx"] = "policy.onnx"
    _atomic(out_dir / "policy.json", lambda p: p.write_text(json.dumps(exported, indent=2)))
    return out_dir


def _export_onnx(module: nn.Module, inputs, path: Path) -> None:
    torch.onnx.export(module, inputs, str(path), dynamo=False, opset_version=17,
                      input_names=["image", "state"], output_names=["action"],
                      dynamic_axes={"image": {0: "batch"}, "state": {0: "batch"}, "action": {0: "batch"}})


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)
