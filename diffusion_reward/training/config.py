"""Typed configuration of a reward-model training run, with per-preset defaults."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..checks import check_device, check_float, check_int, check_memory, check_seed, config_field
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
    """Everything that defines a run. Fields left at None take the preset's default (`resolved()`). The
    `train-reward` flags are generated from these fields (`cli/config_args.py`)."""

    data: list[str] = field(metadata={"metavar": "RECORDING", "help": (
        "expert recording: HDF5 dataset, rosbag2, RealSense, LeRobot dataset or authors' PNG video folder; repeat "
        "for several tasks")})
    out: str = field(metadata={"metavar": "MODEL", "help": "model file to write (.safetensors)"})
    preset: str = config_field("tiny", f"model preset: {', '.join(PRESET_DEFAULTS)}", choices=tuple(PRESET_DEFAULTS))
    video_model: str = config_field(
        "vqdiffusion", "vqdiffusion (Diffusion Reward) or videogpt (the VIPER baseline), on the preset's codec",
        choices=VIDEO_MODELS)
    codec_steps: int | None = config_field(None, "codec training steps (default: per preset)")
    video_steps: int | None = config_field(None, "video-model training steps (default: per preset)")
    codec_batch_size: int | None = config_field(None, "codec frames per step over all ranks (default: per preset)")
    batch_size: int | None = config_field(None, "video-model windows per step over all ranks (default: per preset)")
    codec_lr: float | None = config_field(None, "codec learning rate; Adam, betas (0.5, 0.9) as upstream (default: per "
                                          "preset)")
    lr: float | None = config_field(None, "video-model peak learning rate; AdamW, betas (0.9, 0.96), linear warm-up "
                                    "(default: per preset)")
    warmup_steps: int | None = config_field(None, "video-model learning-rate warm-up steps (default: per preset)")
    weight_decay: float = config_field(4.5e-2, "video-model AdamW weight decay")
    grad_clip: float = config_field(0.5, "gradient-norm clip of both networks")
    ema_decay: float | None = config_field(
        None, "EMA of both networks; the saved model holds the EMA weights (default: per preset)")
    disc_start: int | None = config_field(None, "codec step from which the PatchGAN loss is on (default: per preset)")
    disc_factor: float = config_field(0.1, "PatchGAN loss weight")
    codebook_restart_every: int = config_field(
        50, "codec steps between restarts of unused codes (0: never, as upstream)")
    perceptual_weight: float = config_field(0.1, "perceptual (LPIPS) loss weight, used with --lpips-weights")
    lpips_weights: str | None = config_field(
        None, "VGG16-LPIPS weights file; adds the perceptual loss (never downloaded)", metavar="FILE")
    codec_from: str | None = config_field(None, "reuse this model file's (frozen) codec and train only the video model",
                                          metavar="MODEL")
    frame_skip: int | None = config_field(
        None, "video model: context stride and prediction horizon in frames (default: per preset, 1 as the authors)")
    seed: int = config_field(0, "seed of initialisation, data order and validation split")
    val_fraction: float = config_field(0.1, "fraction of episodes (per task) held out for validation")
    val_every: int | None = config_field(None, "steps between validations (default: per preset)")
    checkpoint_every: int | None = config_field(None, "steps between checkpoints (default: per preset)")
    checkpoint_dir: str | None = config_field(None, "checkpoints and log.jsonl (default: MODEL.ckpt/)")
    keep_checkpoints: int = config_field(2, "checkpoints kept per phase")
    resume: bool = config_field(False, "continue from the latest checkpoint in --checkpoint-dir")
    all_episodes: bool = config_field(False, "also train on episodes recorded as failed (default: left out)")
    resize: bool = config_field(False, "center-crop and resize frames of another size to the model's (as score/relabel "
                                "--resize)")
    device: str = config_field("cpu", "cpu or cuda")
    bf16: bool | None = config_field(
        None, "bf16 autocast for both networks (default: on where the hardware has native bf16, else float32; "
              "precision.py)")
    progress: bool = config_field(True, "progress bars", flag="--no-progress")

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
            raise UserError("give at least one `data` source (HDF5 dataset or video folder).")
        if not 0.0 <= self.val_fraction < 1.0:
            raise UserError(f"`val_fraction` must be in [0, 1), got {self.val_fraction}.")
        for name, low in (("codec_steps", 0), ("video_steps", 0), ("disc_start", 0), ("codebook_restart_every", 0),
                          ("warmup_steps", 1), ("codec_batch_size", 1), ("batch_size", 1), ("checkpoint_every", 1),
                          ("val_every", 1), ("keep_checkpoints", 1)):
            check_int(name, getattr(self, name), low)
        if self.frame_skip is not None:
            check_int("frame_skip", self.frame_skip, 1)
        for name in ("lr", "codec_lr"):
            check_float(name, getattr(self, name), 0.0, above=True)
        for name in ("weight_decay", "grad_clip", "disc_factor", "perceptual_weight"):
            check_float(name, getattr(self, name), 0.0)
        check_float("ema_decay", self.ema_decay, 0.0, 1.0)
        check_seed("seed", self.seed)
        check_device("device", self.device)
        if self.video_model not in VIDEO_MODELS:
            raise UserError(f"`video_model` must be one of {', '.join(VIDEO_MODELS)}, got {self.video_model!r}")
        self._check_batch_memory()
        if self.codec_from is not None and not Path(self.codec_from).is_file():
            raise UserError(f"`codec_from` file {self.codec_from} does not exist.")
        if self.lpips_weights is not None and not Path(self.lpips_weights).is_file():
            raise UserError(f"`lpips_weights` file {self.lpips_weights} does not exist.")

    def _check_batch_memory(self) -> None:
        """One rank's codec and video batches (torchrun's WORLD_SIZE ranks share the global batch)."""
        model, ranks = self.model_config(), int(os.environ.get("WORLD_SIZE", 1))
        if self.codec_from is None:
            check_memory(self.codec_batch_size / ranks * model.codec.training_bytes_per_frame(),
                         f"`codec_batch_size` {self.codec_batch_size}", "use a smaller `codec_batch_size`", self.device)
        check_memory(self.batch_size / ranks * model.training_bytes_per_window(), f"`batch_size` {self.batch_size}",
                     "use a smaller `batch_size`", self.device)

    def model_config(self):
        """The preset's RewardModelConfig with this run's overrides (frame skip)."""
        from ..models.presets import get_preset

        config = get_preset(self.preset, self.video_model)
        if self.frame_skip is None:
            return config
        return dataclasses.replace(config, video=dataclasses.replace(config.video, frame_skip=self.frame_skip))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
