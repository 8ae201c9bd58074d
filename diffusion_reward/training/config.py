"""Typed configuration of a reward-model training run, with per-preset defaults."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..checks import check_device, check_float, check_int, check_memory, check_seed
from ..errors import UserError
from ..models.presets import VIDEO_MODELS

# Step counts and batch sizes that make sense for each model preset. `tiny` is sized so a CPU run on
# three MetaWorld tasks finishes in minutes (bench/bench_reward_quality.py); `paper` follows the upstream configs
# (VQ-GAN batch 32, lr 1e-4, disc after 1000 steps; VQ-Diffusion batch 4, lr 4.5e-4, warm-up 5000, ~1e5 steps).
PRESET_DEFAULTS: dict[str, dict] = {
    "tiny": dict(codec_steps=400, video_steps=1500, codec_batch_size=32, batch_size=32, codec_lr=1e-3, lr=1e-3,
                 disc_start=300, warmup_steps=100, ema_decay=0.99, checkpoint_every=500, val_every=250),
    # base: one domain (~6 000 frames) in under an hour on 2 CPU threads; no GAN (the reward only needs the
    # tokens, and the discriminator would double the codec's step time)
    "base": dict(codec_steps=1200, video_steps=4000, codec_batch_size=32, batch_size=32, codec_lr=6e-4, lr=6e-4,
                 disc_start=10**9, warmup_steps=300, ema_decay=0.995, checkpoint_every=500, val_every=500),
    "small": dict(codec_steps=4000, video_steps=12000, codec_batch_size=32, batch_size=32, codec_lr=4e-4, lr=6e-4,
                  disc_start=2000, warmup_steps=500, ema_decay=0.995, checkpoint_every=1000, val_every=1000),
    "paper": dict(codec_steps=40000, video_steps=100000, codec_batch_size=32, batch_size=4, codec_lr=1e-4, lr=4.5e-4,
                  disc_start=1000, warmup_steps=5000, ema_decay=0.999, checkpoint_every=5000, val_every=5000),
}


@dataclass
class TrainConfig:
    """Everything that defines a run. Fields left at None take the preset's default (`resolved()`)."""

    data: list[str]                      # recordings of any kind data.sources reads (HDF5, rosbag2, RealSense,
                                         # LeRobot, PNG folders; multi-task)
    out: str                             # the model file to write
    preset: str = "tiny"
    video_model: str = "vqdiffusion"     # vqdiffusion (Diffusion Reward) or videogpt (VIPER), on the preset's codec
    codec_steps: int | None = None
    video_steps: int | None = None
    codec_batch_size: int | None = None  # frames per codec step (global, over all ranks)
    batch_size: int | None = None        # windows per video-model step (global, over all ranks)
    codec_lr: float | None = None        # Adam, betas (0.5, 0.9) as upstream
    lr: float | None = None              # video model: AdamW, betas (0.9, 0.96), wd 4.5e-2, linear warm-up
    warmup_steps: int | None = None
    weight_decay: float = 4.5e-2
    grad_clip: float = 0.5
    ema_decay: float | None = None       # EMA of both networks; the saved model holds the EMA weights
    disc_start: int | None = None        # codec step from which the PatchGAN loss is on
    disc_factor: float = 0.1
    codebook_restart_every: int = 50     # codec steps between dead-code restarts (0: never, as upstream)
    perceptual_weight: float = 0.1       # only used when lpips_weights is given
    lpips_weights: str | None = None
    codec_from: str | None = None        # a model file whose (frozen) codec to reuse: skips the codec phase
    frame_skip: int | None = None        # video model: context stride and prediction horizon k (None: the preset's)
    seed: int = 0
    val_fraction: float = 0.1            # fraction of episodes (per task) held out for validation
    val_every: int | None = None
    checkpoint_every: int | None = None
    checkpoint_dir: str | None = None    # default: <out>.ckpt/
    keep_checkpoints: int = 2
    resume: bool = False
    all_episodes: bool = False           # default: episodes recorded as failed are left out
    resize: bool = False                 # center-crop + resize frames of another size (as scoring's resize)
    device: str = "cpu"
    bf16: bool | None = None             # bf16 autocast for both networks (None: where bf16 is native, precision.py)
    progress: bool = True

    def resolved(self) -> "TrainConfig":
        if self.preset not in PRESET_DEFAULTS:
            raise UserError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESET_DEFAULTS)}.")
        filled = {k: v for k, v in PRESET_DEFAULTS[self.preset].items() if getattr(self, k) is None}
        cfg = dataclasses.replace(self, **filled)
        if cfg.checkpoint_dir is None:
            cfg.checkpoint_dir = str(Path(cfg.out).with_name(Path(cfg.out).name + ".ckpt"))
        cfg.validate()
        if cfg.bf16 is None:
            from ..precision import bf16_is_fast

            cfg.bf16 = bf16_is_fast(cfg.device)
        return cfg

    def validate(self) -> None:
        """Every number in range and the batches within memory, before anything is allocated."""
        if not self.data:
            raise UserError("give at least one --data source (HDF5 dataset or video folder).")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"--val-fraction must be in [0, 1), got {self.val_fraction}.")
        for name, low in (("codec_steps", 0), ("video_steps", 0), ("disc_start", 0), ("codebook_restart_every", 0),
                          ("warmup_steps", 1), ("codec_batch_size", 1), ("batch_size", 1), ("checkpoint_every", 1),
                          ("val_every", 1), ("keep_checkpoints", 1)):
            check_int(f"--{name.replace('_', '-')}", getattr(self, name), low)
        if self.frame_skip is not None:
            check_int("--frame-skip", self.frame_skip, 1)
        for name in ("lr", "codec_lr"):
            check_float(f"--{name.replace('_', '-')}", getattr(self, name), 0.0, above=True)
        for name in ("weight_decay", "grad_clip", "disc_factor", "perceptual_weight"):
            check_float(name, getattr(self, name), 0.0)
        check_float("ema_decay", self.ema_decay, 0.0, 1.0)
        check_seed("--seed", self.seed)
        check_device("--device", self.device)
        if self.video_model not in VIDEO_MODELS:
            raise UserError(f"--video-model must be one of {', '.join(VIDEO_MODELS)}, got {self.video_model!r}")
        self._check_batch_memory()
        if self.codec_from is not None and not Path(self.codec_from).is_file():
            raise UserError(f"--codec-from file {self.codec_from} does not exist.")
        if self.lpips_weights is not None and not Path(self.lpips_weights).is_file():
            raise UserError(f"--lpips-weights file {self.lpips_weights} does not exist.")

    def _check_batch_memory(self) -> None:
        """One rank's codec and video batches (torchrun's WORLD_SIZE ranks share the global batch)."""
        model, ranks = self.model_config(), int(os.environ.get("WORLD_SIZE", 1))
        if self.codec_from is None:
            check_memory(self.codec_batch_size / ranks * model.codec.training_bytes_per_frame(),
                         f"--codec-batch-size {self.codec_batch_size}", "use a smaller --codec-batch-size", self.device)
        check_memory(self.batch_size / ranks * model.training_bytes_per_window(), f"--batch-size {self.batch_size}",
                     "use a smaller --batch-size", self.device)

    def model_config(self):
        """The preset's RewardModelConfig with this run's overrides (frame skip)."""
        from ..models.presets import get_preset

        config = get_preset(self.preset, self.video_model)
        if self.frame_skip is None:
            return config
        return dataclasses.replace(config, video=dataclasses.replace(config.video, frame_skip=self.frame_skip))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
