"""Network precision: bf16 only where the hardware multiplies bf16 natively.

bf16 autocast is ~4x faster than float32 for our matrix products on CPUs with AMX / AVX512-BF16 (and on CUDA
GPUs), but on a CPU without bf16 instructions (e.g. AVX2-only x86) oneDNN emulates it and a bf16 matrix product
runs ~20x *slower* than float32 (measured: 0.5 vs 10 GFLOP/s, AMD EPYC with AVX2). "auto" picks per machine.
"""
from __future__ import annotations

import warnings

from .errors import UserError

DTYPES = ("float32", "bfloat16", "auto")
_CPU_BF16_FEATURES = ("amx_bf16", "avx512_bf16", "sve_bf16", "bf16")


def bf16_is_fast(device="cpu") -> bool:
    """True where bf16 matrix products run natively: a CUDA device with bf16, or a CPU with bf16 instructions."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    caps = torch.cpu.get_capabilities()
    return any(caps.get(feature, False) for feature in _CPU_BF16_FEATURES)


def resolve_dtype(dtype: str, device="cpu") -> str:
    """"float32" | "bfloat16" | "auto" -> "float32" | "bfloat16"; warns when bf16 is asked for where it is slow."""
    if dtype not in DTYPES:
        raise UserError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype == "auto":
        return "bfloat16" if bf16_is_fast(device) else "float32"
    if dtype == "bfloat16" and not bf16_is_fast(device):
        warnings.warn(f"this {str(device).split(':')[0]} has no native bf16 matrix instructions: bfloat16 runs "
                      "many times slower than float32 here (use float32 or auto)", stacklevel=2)
    return dtype
