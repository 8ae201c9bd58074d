"""Network precision per machine: bf16 only where the hardware has native bf16 (precision.py)."""
import warnings

import pytest
import torch

from diffusion_reward.errors import UserError
from diffusion_reward.precision import bf16_is_fast, resolve_dtype
from diffusion_reward.training import TrainConfig


@pytest.fixture
def cpu_features(monkeypatch):
    def use(**features):
        monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: {"architecture": "x86_64", **features})
    return use


def test_avx2_only_cpu_gets_float32_and_a_warning_for_explicit_bf16(cpu_features):
    cpu_features(avx2=True, avx512_f=True)  # AVX-512 without its bf16 extension still emulates bf16
    assert not bf16_is_fast("cpu")
    assert resolve_dtype("auto") == "float32"
    with pytest.warns(UserWarning, match="no native bf16"):
        assert resolve_dtype("bfloat16") == "bfloat16"


@pytest.mark.parametrize("feature", ["amx_bf16", "avx512_bf16"])
def test_cpu_with_bf16_instructions_gets_bf16(cpu_features, feature):
    cpu_features(avx2=True, **{feature: True})
    assert bf16_is_fast("cpu") and resolve_dtype("auto") == "bfloat16"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_dtype("bfloat16") == "bfloat16" and resolve_dtype("float32") == "float32"


def test_unknown_dtype_is_a_user_error():
    with pytest.raises(UserError, match="float32, bfloat16, auto"):
        resolve_dtype("float16")


@pytest.mark.parametrize("features,expected", [({"avx2": True}, False), ({"amx_bf16": True}, True)])
def test_training_autocast_defaults_to_the_machine(cpu_features, features, expected, tmp_path):
    cpu_features(**features)
    data = tmp_path / "d.h5"
    data.touch()
    cfg = TrainConfig(data=[str(data)], out=str(tmp_path / "m.safetensors")).resolved()
    assert cfg.bf16 is expected
    assert TrainConfig(data=[str(data)], out=str(tmp_path / "m.safetensors"), bf16=True).resolved().bf16 is True
