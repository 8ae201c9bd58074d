"""Data-parallel training over torch.distributed (torchrun: multi-GPU, multi-node; gloo on CPU); the same
process group shards `relabel` (offline/relabel_shards.py).

Gradients are averaged by all-reducing one flattened buffer per model after each backward pass. That is
what DDP's reducer does, without DDP's forward wrapper, which does not fit the codec's adaptive GAN
weight (it takes `torch.autograd.grad` of two losses on the last decoder layer) nor the video model's
`training_loss` method. Buffers (BatchNorm statistics) are broadcast from rank 0 after each step, as DDP
does. Every rank starts from the same seed, so the weights stay identical on all ranks.
"""
from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup(device: str, timeout: datetime.timedelta | None = None) -> DistInfo:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); else single process.
    `timeout`: how long a collective (a barrier) waits for the other ranks (default: torch's)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(device=device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.startswith("cuda") else "gloo",
                                **({"timeout": timeout} if timeout else {}))
    rank = dist.get_rank()
    if device.startswith("cuda"):
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    return DistInfo(rank=rank, world_size=dist.get_world_size(), device=device)


def average_gradients(info: DistInfo, *modules: nn.Module) -> None:
    if not info.enabled:
        return
    grads = [p.grad for m in modules for p in m.parameters() if p.grad is not None]
    if not grads:
        return
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat /= info.world_size
    for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
        g.copy_(synced)


def broadcast_buffers(info: DistInfo, *modules: nn.Module) -> None:
    if not info.enabled:
        return
    for m in modules:
        for b in m.buffers():
            dist.broadcast(b, src=0)


def from_main(info: DistInfo, value):
    """Rank 0's value on every rank (validation runs on rank 0; all ranks must keep the same best weights)."""
    if not info.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_rng_states(info: DistInfo) -> list[dict]:
    """Every rank's torch RNG states (ranks draw different diffusion times and noise), for checkpoints."""
    state = {"cpu": torch.get_rng_state()}
    if info.device.startswith("cuda"):
        state["cuda"] = torch.cuda.get_rng_state()
    if not info.enabled:
        return [state]
    states: list = [None] * info.world_size
    dist.all_gather_object(states, state)
    return states


def restore_rng_states(info: DistInfo, states: list[dict]) -> bool:
    """Restore this rank's RNG states; False when the checkpoint came from a different number of ranks."""
    if len(states) != info.world_size:
        return False
    torch.set_rng_state(states[info.rank]["cpu"])
    if "cuda" in states[info.rank] and info.device.startswith("cuda"):
        torch.cuda.set_rng_state(states[info.rank]["cuda"])
    return True


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def teardown(info: DistInfo) -> None:
    """Leave the process group (torch warns at exit about one that is still open)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
