"""RewardModel: presets, training loss, the one-file format (round trip, hash, statistics) and bad files."""
from __future__ import annotations

import json
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.models.model_file import FORMAT_VERSION


@pytest.fixture(scope="module")
def tiny():
    return RewardModel.from_preset("tiny", seed=0)


@pytest.fixture(scope="module")
def saved(tiny, tmp_path_factory):
    tiny.set_stats("reach-v3", "entropy", 9, 1, -50.0, 4.0)
    return tiny.save(tmp_path_factory.mktemp("m") / "tiny.safetensors")


def frames(n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 64, 64, 3), dtype=np.uint8)


def test_same_seed_same_weights_other_seed_other_weights():
    a, b, c = (RewardModel.from_preset("tiny", seed=s) for s in (1, 1, 2))
    assert a.weights_hash == b.weights_hash != c.weights_hash


def test_tokenize_shape_and_range(tiny):
    tokens = tiny.tokenize(frames())
    assert tokens.shape == (4, tiny.codec.num_tokens) and tokens.dtype == torch.int64
    assert 0 <= int(tokens.min()) and int(tokens.max()) < tiny.config.codec.num_codes


def test_training_loss_is_finite_reaches_trainable_weights_and_decreases():
    m = RewardModel.from_preset("tiny", seed=0).train()
    tokens = m.tokenize(frames(6))
    x0, cond = tokens[2:6], torch.cat([tokens[0:4], tokens[1:5]], 1)
    opt = torch.optim.Adam([p for p in m.video.parameters() if p.requires_grad], lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(25):
        loss, metrics = m.video.training_loss(x0, cond, generator=gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(metrics["loss"])
    assert np.isfinite(losses).all()
    assert m.video.condition_emb.emb.weight.grad is not None  # learned context embedding trains
    assert np.median(losses[-5:]) < np.median(losses[:5])  # median: t=0 steps (decoder NLL / p_t) spike
    assert int(m.video.Lt_count.sum()) == 25 * 4


def test_copy_path_gives_every_cell_the_current_frames_code_and_trains():
    """context_copy: the current context frame's codes reach the input of the same cells directly, so changing only
    them changes the prediction even with the cross-attention keys/values held fixed; the copy embedding trains."""
    import dataclasses

    from diffusion_reward.models.presets import get_preset

    cfg = get_preset("tiny")
    m = RewardModel.from_config(dataclasses.replace(cfg, video=dataclasses.replace(cfg.video, context_copy=True)),
                                seed=0)
    tokens = m.tokenize(frames(6))
    x0, cond = tokens[2:6], torch.cat([tokens[0:4], tokens[1:5]], 1)
    c = m.video.condition(cond)
    assert torch.equal(c.current, tokens[1:5])
    x_t = torch.full_like(x0, m.video.mask_id)
    t = torch.full((4,), 99)
    with torch.no_grad():
        m.video.transformer.content_emb.copy_emb.weight.normal_(std=1.0)  # a visible copy path (init is 0.02)
        same = m.video.predict_start(x_t, t, c)
        c.current = torch.roll(c.current, 1, dims=1)
        assert not torch.allclose(m.video.predict_start(x_t, t, c), same)
    m.train()
    m.video.training_loss(x0, cond, generator=torch.Generator().manual_seed(0))[0].backward()
    assert m.video.transformer.content_emb.copy_emb.weight.grad.abs().sum() > 0
    assert RewardModel.from_preset("tiny").video.transformer.content_emb.copy_emb is None  # off unless configured


def test_upstream_context_embedding_is_frozen():
    m = RewardModel.from_preset("paper")
    assert not m.video.condition_emb.emb.weight.requires_grad


def test_round_trip_keeps_weights_config_stats_and_hash(tiny, saved):
    loaded = RewardModel.load(saved)
    assert loaded.weights_hash == tiny.weights_hash
    assert loaded.config == tiny.config
    assert loaded.get_stats("reach-v3", "entropy", 9, 1) == (-50.0, 4.0)
    assert loaded.provenance["software_version"]
    with torch.no_grad():
        assert torch.equal(loaded.tokenize(frames()), tiny.tokenize(frames()))


def test_reward_type_auto_is_the_models_own_type():
    from diffusion_reward.reward import RewardScorer, ScoreConfig

    model = RewardModel.from_preset("tiny", seed=0)
    assert model.reward_type == "entropy"  # a file that does not say: the paper's reward
    assert RewardScorer(model, ScoreConfig(standardize=False)).cfg.reward_type == "entropy"
    model.provenance["reward_type"] = "likelihood"
    assert RewardScorer(model, ScoreConfig(standardize=False)).cfg.reward_type == "likelihood"
    assert RewardScorer(model, ScoreConfig(reward_type="entropy", standardize=False)).cfg.reward_type == "entropy"
    with pytest.raises(UserError, match="reward type must be one of auto, entropy, likelihood"):
        RewardScorer(model, ScoreConfig(reward_type="entropyy", standardize=False))


def test_hash_ignores_stats_but_sees_weights(tiny):
    h = tiny.weights_hash
    tiny.set_stats("other-v3", "likelihood", 4, 2, 1.0, 2.0)
    assert tiny.weights_hash == h
    m = RewardModel.from_preset("tiny", seed=0)
    with torch.no_grad():
        m.video.transformer.to_logits[1].bias[0] += 1e-3
    assert m.weights_hash != h


def test_missing_stats_names_the_stats_command(saved):
    m = RewardModel.load(saved)
    with pytest.raises(UserError, match=r"diffusion-reward stats --model .*tiny.safetensors --data EXPERT_DATA --task door"):
        m.get_stats("door", "entropy", 9, 1)
    with pytest.raises(UserError):
        m.get_stats("reach-v3", "entropy", 9, 1, likelihood_compat=True)


def _rewrite(path, out, *, metadata=None, tensors=None):
    from safetensors.torch import load_file

    t = load_file(path) if tensors is None else tensors
    header_len = struct.unpack("<Q", path.read_bytes()[:8])[0]
    meta = json.loads(path.read_bytes()[8:8 + header_len])["__metadata__"]
    meta.update(metadata or {})
    if tensors is not None:  # other weights: as another tool would write them, without our integrity hash
        meta.pop("tensors_sha256", None)
    save_file(t, out, metadata=meta)
    return out


def test_a_changed_weight_byte_fails_the_integrity_hash(saved, tmp_path):
    """A bit flip that keeps every weight finite (so the NaN check cannot see it) is still refused."""
    data = bytearray(saved.read_bytes())
    data[-3] ^= 0x01  # inside the last tensor's bytes
    flipped = tmp_path / "flipped.safetensors"
    flipped.write_bytes(bytes(data))
    with pytest.raises(UserError, match="do not match the integrity hash"):
        RewardModel.load(flipped)
    assert RewardModel.load(saved).weights_hash  # the intact file still loads


def test_bad_files_raise_one_clear_user_error(saved, tmp_path):
    from safetensors.torch import load_file

    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(saved.read_bytes()[:-1000])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"PK\x03\x04 this is a pickle zip, not safetensors")
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, foreign, metadata={"format": "pt"})
    newer = _rewrite(saved, tmp_path / "newer.safetensors", metadata={"format_version": str(FORMAT_VERSION + 1)})
    t = load_file(saved)
    missing = _rewrite(saved, tmp_path / "missing.safetensors", tensors={k: v for k, v in t.items() if "to_logits" not in k})
    shaped = dict(t)
    key = next(k for k in t if k.endswith("quant_conv.bias"))
    shaped[key] = torch.zeros(t[key].numel() + 1)
    wrong_shape = _rewrite(saved, tmp_path / "shape.safetensors", tensors=shaped)
    cases = {truncated: "truncated", junk: "not a safetensors", foreign: "not a diffusion-reward model",
             newer: "newer", missing: "missing keys", wrong_shape: "wrong shape", tmp_path / "nope": "does not exist"}
    for path, message in cases.items():
        with pytest.raises(UserError, match=message) as err:
            RewardModel.load(path)
        assert "\n" not in str(err.value)


def test_failed_save_leaves_the_existing_file_untouched(tiny, saved, monkeypatch):
    before = saved.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        tiny.save(saved)
    assert saved.read_bytes() == before
    assert [p.name for p in saved.parent.iterdir()] == [saved.name]


def test_bf16_weights_halve_the_file_and_load_back_as_rounded_float32(tmp_path):
    model = RewardModel.from_preset("tiny", seed=3)
    full = model.save(tmp_path / "fp32.safetensors")
    half = model.save(tmp_path / "bf16.safetensors", weights_dtype="bfloat16")
    assert half.stat().st_size < 0.6 * full.stat().st_size
    loaded = RewardModel.load(half)
    for name, p in model.video.named_parameters():
        q = dict(loaded.video.named_parameters())[name]
        assert q.dtype == torch.float32 and torch.equal(q, p.detach().to(torch.bfloat16).float()), name
    for name, b in model.video.named_buffers():  # the diffusion schedule is never rounded
        assert torch.equal(dict(loaded.video.named_buffers())[name], b), name
    with pytest.raises(UserError, match="weights_dtype"):
        model.save(tmp_path / "x.safetensors", weights_dtype="float16")


def test_tokenize_feeds_the_codec_channels_last_with_the_same_tokens():
    """`tokenize` encodes channels-last input (faster convolutions); the tokens equal those of NCHW input on the
    shipped MetaWorld codec and real MetaWorld frames (bench/bench_codec_layout.py times both)."""
    from diffusion_reward.models.model_file import frames_to_input
    from diffusion_reward.models.pretrained import PRETRAINED_DIR
    from diffusion_reward.sim import make_env

    model = RewardModel.load(PRETRAINED_DIR / "metaworld.safetensors")
    env = make_env("door-close-v3", seed=3)
    frames = [env.reset(seed=3)["image"]]
    rng = np.random.default_rng(0)
    for _ in range(23):
        frames.append(env.step(rng.uniform(-1, 1, 4))[0]["image"])
    frames = np.stack(frames)
    with torch.no_grad():
        nchw = model.codec.encode(frames_to_input(torch.as_tensor(frames)))
    assert torch.equal(model.tokenize(frames), nchw)
