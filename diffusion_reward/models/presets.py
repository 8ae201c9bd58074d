"""Typed configurations of the reward model and its named presets (`base`, `tiny`, `small`, `paper`).

`paper` is the authors' architecture (VQ-GAN [128,128,256,256] x 1024 codes of 64-d; VQ-Diffusion with 16 layers
of width 128 and an untrained 1024-d context embedding) so their checkpoints import into it key for key.
`base` (the shipped models), `tiny` and `small` are ours: smaller, and with a trained context embedding that
knows which frame and which grid cell every context token comes from.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..checks import check_float, check_int, check_memory
from ..errors import UserError


@dataclass(frozen=True)
class CodecConfig:
    """VQ-GAN: image_size x image_size RGB -> latent_size x latent_size grid of codebook indices."""

    channels: tuple[int, ...] = (128, 128, 256, 256)
    latent_dim: int = 64  # code vector size
    num_codes: int = 1024
    image_size: int = 64
    attn_resolutions: tuple[int, ...] = (16,)
    num_res_blocks: int = 2
    beta: float = 0.25  # weight of the codebook term (upstream quirk, see codec.Codebook)
    norm_groups: int = 32  # GroupNorm groups (upstream: 32, fixed)

    @property
    def latent_size(self) -> int:
        return self.image_size // 2 ** (len(self.channels) - 1)

    def training_bytes_per_frame(self) -> int:
        """Activation memory of one frame in a codec training step (forward and backward, float32): 16 tensors
        of each level's size per residual block (estimate / measured: tiny 12 / 10 MB, base 28 / 27 MB)."""
        level_values = sum(c * (self.image_size // 2 ** i) ** 2 for i, c in enumerate(self.channels))
        return 4 * 16 * (self.num_res_blocks + 1) * level_values

    def validate(self) -> None:
        for name in ("latent_dim", "num_codes", "image_size", "num_res_blocks", "norm_groups"):
            check_int(f"codec.{name}", getattr(self, name), low=1)
        for name in ("channels", "attn_resolutions"):
            for i, value in enumerate(getattr(self, name)):
                check_int(f"codec.{name}[{i}]", value, low=1)
        check_float("codec.beta", self.beta, low=0)
        if len(self.channels) < 2:
            raise UserError("codec.channels needs at least two entries")
        if any(c % self.norm_groups for c in self.channels):
            raise UserError(f"codec.channels must be multiples of norm_groups {self.norm_groups}, got {list(self.channels)}")
        if self.image_size % 2 ** (len(self.channels) - 1):
            raise UserError(f"codec.image_size {self.image_size} is not divisible by 2^{len(self.channels) - 1}")


@dataclass(frozen=True)
class VideoConfig:
    """VQ-Diffusion transformer over the next frame's tokens, cross-attending to the context frames' tokens."""

    n_layer: int = 16
    n_embd: int = 128
    n_head: int = 16
    condition_dim: int = 1024
    mlp_hidden_times: int = 2
    num_cond_frames: int = 2
    frame_skip: int = 1
    diffusion_steps: int = 100
    # "upstream": plain N(0,1) code embedding, frozen, no frame/position information (checkpoint compatible).
    # "learned": trained code embedding + frame embedding + grid-position embedding.
    context_embedding: str = "upstream"
    # History before the episode start: "repeat" (upstream: every context frame is the current frame, so row 0
    # is (f0, f0)) or "token" (a learned [PAD] context frame, so a robot that really stands still, (f, f), is not
    # the context of every episode's first row). "token" needs the learned context embedding.
    context_padding: str = "repeat"
    # The current context frame f[i]'s code at each grid cell is added to the input of the same cell ("copy"
    # path): a cell that does not move is then predicted from what is there now, on any scene, instead of
    # from what the model remembers of its training scenes. Upstream has no such path (False). Measured on the
    # base preset (MODEL_CARD.md, "Copy path"): it makes a frozen robot likelier everywhere, so no preset uses it.
    context_copy: bool = False
    auxiliary_loss_weight: float = 1e-3
    adaptive_auxiliary_loss: bool = True

    def validate(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "condition_dim", "mlp_hidden_times", "num_cond_frames",
                     "frame_skip"):
            check_int(f"video.{name}", getattr(self, name), low=1)
        check_int("video.diffusion_steps", self.diffusion_steps, low=2)
        check_float("video.auxiliary_loss_weight", self.auxiliary_loss_weight, low=0)
        for name in ("adaptive_auxiliary_loss", "context_copy"):
            if not isinstance(getattr(self, name), bool):
                raise UserError(f"video.{name} must be true or false, got {getattr(self, name)!r}")
        if self.context_embedding not in ("upstream", "learned"):
            raise UserError(f"video.context_embedding must be 'upstream' or 'learned', got {self.context_embedding!r}")
        if self.context_padding not in ("repeat", "token"):
            raise UserError(f"video.context_padding must be 'repeat' or 'token', got {self.context_padding!r}")
        if self.context_padding == "token" and self.context_embedding != "learned":
            raise UserError("video.context_padding 'token' needs the learned context embedding")
        if self.n_embd % self.n_head:
            raise UserError(f"video.n_embd {self.n_embd} is not divisible by n_head {self.n_head}")


@dataclass(frozen=True)
class VideoGPTConfig:
    """VideoGPT (VIPER's video model): a causal transformer over the code vectors of num_cond_frames context
    frames and the target frame. Defaults are the authors' (8 x 512, 8 heads; block_size 5120 so their checkpoints
    load key for key, though only (num_cond_frames + 1) x 64 positions are used)."""

    n_layer: int = 8
    n_embd: int = 512
    n_head: int = 8
    block_size: int = 5120  # rows of the learned position table
    pkeep: float = 0.8  # training: each input vector is kept with this probability, else zeroed (upstream)
    dropout: float = 0.0  # embedding, attention and residual dropout (upstream: 0)
    num_cond_frames: int = 2
    frame_skip: int = 1
    # the scorer's row layout for this model: the first num_cond_frames * frame_skip rows score a frame given
    # copies of itself (upstream), later rows (f[i-2k], f[i-k]) -> f[i]
    context_padding: str = "repeat"

    def validate(self) -> None:
        for name in ("n_layer", "n_embd", "n_head", "block_size", "num_cond_frames", "frame_skip"):
            check_int(f"video.{name}", getattr(self, name), low=1)
        check_float("video.pkeep", self.pkeep, 0.0, 1.0, above=True)
        check_float("video.dropout", self.dropout, 0.0, 1.0)
        if self.n_embd % self.n_head:
            raise UserError(f"video.n_embd {self.n_embd} is not divisible by n_head {self.n_head}")
        if self.context_padding != "repeat":
            raise UserError(f"VideoGPT video.context_padding must be 'repeat', got {self.context_padding!r}")


VIDEO_MODELS = {"vqdiffusion": VideoConfig, "videogpt": VideoGPTConfig}  # `--video-model` name -> its config


@dataclass(frozen=True)
class RewardModelConfig:
    codec: CodecConfig = field(default_factory=CodecConfig)
    video: VideoConfig | VideoGPTConfig = field(default_factory=VideoConfig)
    preset: str = "custom"

    @property
    def video_model(self) -> str:
        """"vqdiffusion" (Diffusion Reward) or "videogpt" (VIPER): what `video` configures."""
        return "videogpt" if isinstance(self.video, VideoGPTConfig) else "vqdiffusion"

    def validate(self) -> None:
        self.codec.validate()
        self.video.validate()
        tokens = (self.video.num_cond_frames + 1) * self.codec.latent_size ** 2
        if self.video_model == "videogpt" and tokens > self.video.block_size:
            raise UserError(f"video.block_size {self.video.block_size} is shorter than a row's {tokens} tokens")
        weights = self.approx_parameters()
        check_memory(4 * weights, f"a reward model of this config (about {weights:.3g} float32 weights)",
                     "its sizes (n_layer, n_embd, diffusion_steps, num_codes, channels) are too large")

    def training_bytes_per_window(self) -> int:
        """Activation memory of one window in a video-model training step (float32). VQ-Diffusion: 64
        class-by-token tensors of the diffusion math plus the transformer's activations (estimate / measured:
        tiny 3.2 / 2.9 MB). VideoGPT: per position, the logits and ~20 width-sized tensors per layer, plus the
        attention maps (seq x seq per head and layer)."""
        tokens, v = self.codec.latent_size ** 2, self.video
        if self.video_model == "videogpt":
            seq = (v.num_cond_frames + 1) * tokens
            return 4 * seq * (4 * self.codec.num_codes + 20 * v.n_layer * v.n_embd + 3 * v.n_layer * v.n_head * seq)
        return 4 * tokens * (64 * (self.codec.num_codes + 1) + 32 * v.n_layer * v.n_embd)

    def approx_parameters(self) -> int:
        """Weights and buffers of the model this config builds, to within a small factor (convolutions,
        embeddings and linear layers; norms and biases left out): bounds memory before anything is built."""
        c, v = self.codec, self.video
        codec = 36 * (c.num_res_blocks + 1) * sum(ch * ch for ch in c.channels) + c.num_codes * c.latent_dim
        if self.video_model == "videogpt":
            return codec + 12 * v.n_layer * v.n_embd ** 2 + (v.block_size + c.num_codes + c.latent_dim) * v.n_embd
        block = 2 * v.diffusion_steps * v.n_embd + (10 + 18 * v.mlp_hidden_times) * v.n_embd ** 2 \
            + 2 * v.condition_dim * v.n_embd
        embeddings = (c.num_codes + c.latent_size ** 2 * v.num_cond_frames) * v.condition_dim \
            + (3 + v.context_copy) * (c.num_codes + 1) * v.n_embd + 16 * v.diffusion_steps
        return codec + v.n_layer * block + embeddings

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"video_model": self.video_model}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RewardModelConfig":
        if not isinstance(d, dict):
            raise UserError(f"the model config is not a mapping (got {type(d).__name__})")
        video_model = d.get("video_model", "vqdiffusion")  # files written before VideoGPT existed do not say
        if video_model not in VIDEO_MODELS:
            raise UserError(f"unknown video_model {video_model!r}; this software knows {', '.join(VIDEO_MODELS)}")
        try:
            codec = dict(d["codec"])
            codec["channels"] = tuple(codec["channels"])
            codec["attn_resolutions"] = tuple(codec["attn_resolutions"])
            cfg = cls(codec=CodecConfig(**codec), video=VIDEO_MODELS[video_model](**d["video"]),
                      preset=d.get("preset", "custom"))
        except (KeyError, TypeError) as exc:
            raise UserError(f"missing or unknown fields ({exc})") from None
        cfg.validate()
        return cfg


PRESETS: dict[str, RewardModelConfig] = {
    "paper": RewardModelConfig(preset="paper"),
    "small": RewardModelConfig(
        codec=CodecConfig(channels=(64, 64, 128, 128), latent_dim=32, num_codes=256),
        video=VideoConfig(n_layer=6, n_embd=128, n_head=8, condition_dim=128, context_embedding="learned"),
        preset="small",
    ),
    # the shipped reward models: one domain trains in under an hour on one AVX2 core in float32 (training/config.py).
    # Frame skip 4: the context is (f[i-4], f[i]) and the prediction f[i+4], four agent steps ahead, where an expert
    # has visibly moved and a frozen robot has not (scored in likelihood mode, see MODEL_CARD.md). The video model
    # is small (2 x 64): a 6 x 128 one trains 6x slower and scores 4x slower, and its frame-skip-4 probe ranked
    # reach / door-close no better (AUROC 1.00 / 0.92 vs epsilon 1, the same as this one; MODEL_CARD.md).
    "base": RewardModelConfig(
        codec=CodecConfig(channels=(32, 64, 64, 128), latent_dim=32, num_codes=256, attn_resolutions=(),
                          num_res_blocks=1, norm_groups=16),
        video=VideoConfig(n_layer=2, n_embd=64, n_head=4, condition_dim=64, frame_skip=4, context_embedding="learned",
                          context_padding="token"),
        preset="base",
    ),
    # fast enough on a laptop CPU for tests and the demo (a few ms per frame for encode + an 11-step chain)
    "tiny": RewardModelConfig(
        codec=CodecConfig(channels=(16, 16, 32, 32), latent_dim=16, num_codes=128, attn_resolutions=(),
                          num_res_blocks=1, norm_groups=8),
        video=VideoConfig(n_layer=2, n_embd=64, n_head=4, condition_dim=64, context_embedding="learned"),
        preset="tiny",
    ),
}


# VIPER's VideoGPT on each preset's codec: `paper` is the authors' 8 x 512 (28.4 M parameters); the others are
# sized like the preset's VQ-Diffusion model, with its frame skip, and a position table just long enough
VIDEOGPT_PRESETS: dict[str, VideoGPTConfig] = {
    "paper": VideoGPTConfig(),
    "small": VideoGPTConfig(n_layer=6, n_embd=128, n_head=8, block_size=192),
    "base": VideoGPTConfig(n_layer=2, n_embd=64, n_head=4, block_size=192, frame_skip=4),
    "tiny": VideoGPTConfig(n_layer=2, n_embd=64, n_head=4, block_size=192),
}


def get_preset(name: str, video_model: str = "vqdiffusion") -> RewardModelConfig:
    """The preset's codec with its VQ-Diffusion (Diffusion Reward) or VideoGPT (VIPER) video model."""
    if name not in PRESETS:
        raise UserError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    if video_model not in VIDEO_MODELS:
        raise UserError(f"unknown video model {video_model!r}; choose one of {', '.join(VIDEO_MODELS)}")
    if video_model == "vqdiffusion":
        return PRESETS[name]
    return dataclasses.replace(PRESETS[name], video=VIDEOGPT_PRESETS[name])
