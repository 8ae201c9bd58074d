"""Reward-model training: the VQ-GAN codec first, then the video model (VQ-Diffusion, or VIPER's VideoGPT) on its
tokens.

    model_path = train_reward_model(TrainConfig(data=["expert.h5"], out="model.safetensors", preset="tiny"))

Differences from the authors' trainers (TEA-Lab/diffusion_reward, commit 384ec68), on purpose:
- The generator and discriminator updates are separated: the discriminator sees `recon.detach()` and is
  frozen during the generator pass. Upstream (dome272) backpropagates the discriminator's hinge loss into
  the VQ-GAN as well, because the fake images are not detached.
- Windows are drawn per episode over every target frame, history padded as at reward time (training/data.py).
- Dead codebook entries are restarted: every `codebook_restart_every` codec steps, codes no frame of those
  steps used are moved onto randomly chosen encoder outputs of the current batch (upstream has no restarts
  and, measured here, used ~20 of 256 codes per frame). Usage is logged (`codes_used`) and summarised.
- EMA is updated every step (upstream: every 25 steps) with a warm-up of the decay; both networks are
  saved as EMA weights, and the weights with the best validation loss (episodes held out per task) are kept.
Periodic checkpoints hold the optimiser, EMA, sampler and RNG states, so `resume=True` continues exactly
where the last checkpoint left off (bit for bit on the same hardware and number of ranks).
"""
from __future__ import annotations

import copy
import json
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..errors import UserError
from ..models.codec import frames_to_input
from ..models.discriminator import PatchDiscriminator, hinge_d_loss
from . import distributed
from .checkpoint import EMA, Checkpoints
from .config import TrainConfig
from ..data.sources import load_episodes
from .data import FrameSampler, WindowSampler, split_by_episode

MAX_VAL_ITEMS = 512  # frames / windows evaluated per validation (evenly spaced when there are more)
LOG_EVERY = 10


def train_reward_model(cfg: TrainConfig, model=None) -> Path:
    """Train codec then video model (`model`, or a new one of cfg's preset); returns the written model file (rank 0;
    other ranks return it too)."""
    return RewardTrainer(cfg, model).fit()


class RewardTrainer:
    def __init__(self, cfg: TrainConfig, model=None):
        from ..models import RewardModel

        self.cfg = cfg = cfg.resolved()
        self.dist = distributed.setup(cfg.device)
        for name in ("codec_batch_size", "batch_size"):
            if getattr(cfg, name) % self.dist.world_size:
                raise UserError(f"{name} {getattr(cfg, name)} is not divisible by the {self.dist.world_size} ranks.")
        self.device = torch.device(self.dist.device)
        self.model = model if model is not None else RewardModel.from_config(cfg.model_config(), seed=cfg.seed)
        self.codec_source = RewardModel.load(cfg.codec_from) if cfg.codec_from else None  # read before writing
        self.lpips = None
        if cfg.lpips_weights:  # also read before writing: a damaged file fails before the checkpoint folder exists
            from ..models.lpips import LPIPS

            self.lpips = LPIPS.from_file(cfg.lpips_weights).to(self.device)
        if self.codec_source is not None and self.codec_source.config.codec != self.model.config.codec:
            raise UserError(f"`codec_from` {cfg.codec_from}: its codec config differs from preset {cfg.preset!r}'s.")
        self.model.codec.to(self.device)
        self.model.video.to(self.device)
        torch.manual_seed(cfg.seed * 1000 + self.dist.rank)  # diffusion times / noise differ between ranks
        episodes, self.provenance = load_episodes(cfg.data, self.model.image_size, cfg.all_episodes, cfg.resize)
        self.train_eps, self.val_eps = split_by_episode(episodes, cfg.val_fraction, cfg.seed)
        self.checkpoints = Checkpoints(cfg.checkpoint_dir, cfg.keep_checkpoints)
        self.log_path = Path(cfg.checkpoint_dir) / "log.jsonl"
        self.summary: dict = {}

    # ---- orchestration -------------------------------------------------------------------------------------
    def fit(self) -> Path:
        cfg = self.cfg
        resume = self.checkpoints.latest() if cfg.resume else None
        if cfg.resume and resume is None:
            raise UserError(f"`resume`: no checkpoint in {cfg.checkpoint_dir}.")
        saved = json.loads(resume["config"]) if resume is not None else None
        if saved is not None:
            was = (saved["preset"], saved.get("video_model", "vqdiffusion"), saved.get("frame_skip"))
            if was != (cfg.preset, cfg.video_model, cfg.frame_skip):
                raise UserError(f"the checkpoints in {cfg.checkpoint_dir} are of preset {was[0]!r} ({was[1]}, frame "
                                f"skip {was[2]}), not {cfg.preset!r} ({cfg.video_model}, frame skip {cfg.frame_skip}).")
        if not cfg.resume and self.checkpoints.existing():
            raise UserError(f"{cfg.checkpoint_dir} holds checkpoints of an earlier run; pass `resume` or "
                            "choose another `checkpoint_dir`.")
        if self.dist.is_main:
            Path(cfg.checkpoint_dir).mkdir(parents=True, exist_ok=True)
        if resume is not None and resume["phase"] == "video":
            self.model.codec.load_state_dict(resume["codec"])
            self.summary = dict(resume["summary"])
        elif self.codec_source is not None:
            self._load_codec(self.codec_source)
        else:
            self._train_codec(resume)
        self._train_video(resume if resume is not None and resume["phase"] == "video" else None)
        out = Path(cfg.out)
        if self.dist.is_main:
            self._save_model(out)
        distributed.barrier(self.dist)
        return out

    def _autocast(self):
        # bf16 autocast: ~1.9x faster codec steps and ~1.5x faster video steps on CPU
        # (`bench/bench_reward_quality.py --speed`); the diffusion math stays in float32/float64.
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16)

    def _log(self, record: dict) -> None:
        if self.dist.is_main:
            with open(self.log_path, "a") as f:
                f.write(json.dumps(record | {"time": round(time.time(), 3)}) + "\n")

    def _progress(self, phase: str, total: int, initial: int):
        return tqdm(total=total, initial=initial, desc=phase, unit="step", dynamic_ncols=True,
                    disable=not (self.dist.is_main and self.cfg.progress))

    def _resume_common(self, state: dict, sampler, ema: EMA) -> None:
        sampler.generator.set_state(state["sampler"])
        ema.load_state_dict(state["ema"])
        if not distributed.restore_rng_states(self.dist, state["rng"]):
            print(f"warning: checkpoint was written by {len(state['rng'])} ranks; RNG streams restart from the seed")

    # ---- phase 1: codec ------------------------------------------------------------------------------------
    def _load_codec(self, source) -> None:
        """Reuse a trained codec (a new video model on the same tokens, e.g. another context layout)."""
        self.model.codec.load_state_dict(source.codec.state_dict())
        self.summary = {"codec_from": str(source.path), "codec_from_hash": source.weights_hash,
                        **{k: source.provenance.get(k) for k in ("codec_steps", "codec_val_rec_l1")}}

    def _train_codec(self, resume: dict | None) -> None:
        cfg, codec = self.cfg, self.model.codec
        disc = PatchDiscriminator(base_channels=codec.config.channels[0] // 2).to(self.device)  # paper: 64, as upstream
        opt_g = torch.optim.Adam(codec.parameters(), lr=cfg.codec_lr, betas=(0.5, 0.9))
        opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.codec_lr, betas=(0.5, 0.9))
        sampler = FrameSampler(self.train_eps, seed=cfg.seed)
        ema = EMA(codec, cfg.ema_decay)
        best = {"val": float("inf"), "state": None}
        start = 0
        if resume is not None:
            codec.load_state_dict(resume["codec"])
            disc.load_state_dict(resume["disc"])
            opt_g.load_state_dict(resume["opt_g"])
            opt_d.load_state_dict(resume["opt_d"])
            best = resume["best"]
            start = resume["step"]
            self._resume_common(resume, sampler, ema)
        val_frames = _evenly_spaced(torch.from_numpy(_concat_frames(self.val_eps)), MAX_VAL_ITEMS)
        last_conv = codec.decoder.model[-1].weight
        local_batch = cfg.codec_batch_size // self.dist.world_size
        usage = resume["usage"] if resume is not None else torch.zeros(codec.config.num_codes, dtype=torch.long)
        bar = self._progress("codec", cfg.codec_steps, start)
        for step in range(start, cfg.codec_steps):
            codec.train()
            x = frames_to_input(sampler.batch(cfg.codec_batch_size, self.dist.rank, self.dist.world_size)).to(self.device)
            gan_on = step >= cfg.disc_start
            disc.requires_grad_(False)
            with self._autocast():
                z = codec.encode_latent(x)
                z_q, tokens, q_loss = codec.codebook(z)
                recon = codec.decode(z_q).float()
                rec_loss = (x - recon).abs().mean()
                if self.lpips is not None:
                    rec_loss = rec_loss + cfg.perceptual_weight * self.lpips(x, recon).mean()
                loss = rec_loss + q_loss.float()
                if gan_on:
                    g_loss = -disc(recon).float().mean()
                    weight = _adaptive_weight(rec_loss, g_loss, last_conv)
                    loss = loss + cfg.disc_factor * weight * g_loss
            _check_finite(loss, "codec", step)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            distributed.average_gradients(self.dist, codec)
            opt_g.step()
            metrics = {"loss": loss.item(), "rec": rec_loss.item(), "q": q_loss.item()}
            usage += torch.bincount(tokens.flatten().cpu(), minlength=len(usage))
            if gan_on:  # discriminator step on detached reconstructions (the upstream no-detach bug, fixed)
                disc.requires_grad_(True)
                with self._autocast():
                    d_loss = cfg.disc_factor * hinge_d_loss(disc(x).float(), disc(recon.detach()).float())
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                distributed.average_gradients(self.dist, disc)
                opt_d.step()
                distributed.broadcast_buffers(self.dist, disc)
                metrics |= {"g": g_loss.item(), "d": d_loss.item(), "gan_weight": float(weight)}
            done = step + 1
            if cfg.codebook_restart_every and done % cfg.codebook_restart_every == 0:
                metrics |= self._restart_dead_codes(usage, z.detach())
                usage.zero_()
            ema.update(codec)
            bar.update(1)
            bar.set_postfix(rec=f"{metrics['rec']:.4f}", codes=metrics.get("codes_used", "-"))
            if done % LOG_EVERY == 0 or done == cfg.codec_steps:
                self._log({"phase": "codec", "step": done, "batch": local_batch} | metrics)
            if done % cfg.val_every == 0 or done == cfg.codec_steps:
                val = distributed.from_main(self.dist, self._validate_codec(ema, val_frames))
                if val is not None and val < best["val"]:
                    best = {"val": val, "state": {k: v.clone() for k, v in ema.state.items()}}
                self._log({"phase": "codec", "step": done, "val_rec": val})
            if done % cfg.checkpoint_every == 0 or done == cfg.codec_steps:
                self._checkpoint({
                    "phase": "codec", "step": done, "codec": codec.state_dict(), "disc": disc.state_dict(),
                    "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(), "ema": ema.state_dict(),
                    "best": best, "sampler": sampler.generator.get_state(), "usage": usage,
                })
        bar.close()
        # the codec the video model is trained on (and that is saved): best-by-validation EMA, else final EMA
        codec.load_state_dict(best["state"] if best["state"] is not None else ema.state)
        self.summary = {"codec_steps": cfg.codec_steps,
                        "codec_val_rec_l1": None if best["state"] is None else best["val"]}

    @torch.no_grad()
    def _restart_dead_codes(self, usage: torch.Tensor, latents: torch.Tensor) -> dict:
        """Move codes unused since the last restart onto random encoder outputs of this batch (rank 0's choice)."""
        weight = self.model.codec.codebook.embedding.weight
        dead = torch.nonzero(usage == 0).flatten()
        new = None
        if self.dist.is_main and len(dead):
            flat = latents.float().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
            new = (dead, flat[torch.randint(len(flat), (len(dead),), device=flat.device)].to(weight.dtype).cpu())
        new = distributed.from_main(self.dist, new)
        if new is not None:
            weight[new[0].to(weight.device)] = new[1].to(weight.device)
        return {"codes_used": int((usage > 0).sum()), "codes_restarted": int(len(dead))}

    @torch.no_grad()
    def _validate_codec(self, ema: EMA, frames: torch.Tensor) -> float | None:
        if not self.dist.is_main or len(frames) == 0:
            return None
        codec = _copy_with_state(self.model.codec, ema.state)
        total = 0.0
        for chunk in frames.split(128):
            x = frames_to_input(chunk).to(self.device)
            total += (codec(x)[0] - x).abs().mean().item() * len(chunk)
        return total / len(frames)

    # ---- phase 2: video model ------------------------------------------------------------------------------
    def _train_video(self, resume: dict | None) -> None:
        cfg, video, vcfg = self.cfg, self.model.video, self.model.config.video
        train_tokens = self._tokenize(self.train_eps)
        self.summary["codebook_usage"] = codebook_usage(train_tokens, self.model.codec.config.num_codes)
        full_context = self.model.video_model == "videogpt"  # VideoGPT trains on whole windows only, as upstream
        val_windows = WindowSampler(self._tokenize(self.val_eps), vcfg.num_cond_frames, vcfg.frame_skip, cfg.seed,
                                    pad_id=video.pad_id, full_context=full_context) if self.val_eps else None
        sampler = WindowSampler(train_tokens, vcfg.num_cond_frames, vcfg.frame_skip, seed=cfg.seed + 1,
                                pad_id=video.pad_id, full_context=full_context)
        params = [p for p in video.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.96), weight_decay=cfg.weight_decay)
        ema = EMA(video, cfg.ema_decay)
        best = {"val": float("inf"), "state": None}
        start = 0
        if resume is not None:
            video.load_state_dict(resume["video"])
            opt.load_state_dict(resume["opt"])
            best = resume["best"]
            start = resume["step"]
            self._resume_common(resume, sampler, ema)
        local_batch = cfg.batch_size // self.dist.world_size
        bar = self._progress("video", cfg.video_steps, start)
        for step in range(start, cfg.video_steps):
            video.train()
            lr = cfg.lr * min(1.0, (step + 1) / cfg.warmup_steps)
            for group in opt.param_groups:
                group["lr"] = lr
            x0, cond = sampler.batch(cfg.batch_size, self.dist.rank, self.dist.world_size)
            with self._autocast():
                loss, metrics = video.training_loss(x0.to(self.device), cond.to(self.device))
            _check_finite(loss, "video", step)
            opt.zero_grad(set_to_none=True)
            loss.float().backward()
            distributed.average_gradients(self.dist, video)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            distributed.broadcast_buffers(self.dist, video)
            ema.update(video)
            done = step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if done % LOG_EVERY == 0 or done == cfg.video_steps:
                self._log({"phase": "video", "step": done, "batch": local_batch, "loss": loss.item(), "lr": lr,
                           "grad_norm": grad_norm.item()} | {k: _scalar(v) for k, v in metrics.items()})
            if done % cfg.val_every == 0 or done == cfg.video_steps:
                val = distributed.from_main(self.dist, self._validate_video(ema, val_windows))
                if val is not None and val < best["val"]:
                    best = {"val": val, "state": {k: v.clone() for k, v in ema.state.items()}}
                self._log({"phase": "video", "step": done, "val_loss": val})
            if done % cfg.checkpoint_every == 0 or done == cfg.video_steps:
                self._checkpoint({
                    "phase": "video", "step": done, "codec": self.model.codec.state_dict(), "summary": self.summary,
                    "video": video.state_dict(), "opt": opt.state_dict(), "ema": ema.state_dict(), "best": best,
                    "sampler": sampler.generator.get_state(),
                })
        bar.close()
        video.load_state_dict(best["state"] if best["state"] is not None else ema.state)
        self.summary |= {"video_steps": cfg.video_steps,
                         "video_val_loss": None if best["state"] is None else best["val"]}

    @torch.no_grad()
    def _tokenize(self, episodes) -> list[torch.Tensor]:
        """Every frame through the codec once, in float32 like the scorer (bf16 could flip nearest codes)."""
        self.model.codec.eval()
        return [self.model.tokenize(ep.frames).cpu() for ep in episodes]

    @torch.no_grad()
    def _validate_video(self, ema: EMA, windows: WindowSampler | None) -> float | None:
        if not self.dist.is_main or windows is None:
            return None
        video = _copy_with_state(self.model.video, ema.state)
        x0, cond = (_evenly_spaced(t, MAX_VAL_ITEMS) for t in windows.all_windows())
        generator = torch.Generator(self.device).manual_seed(self.cfg.seed)  # same diffusion times every time
        total = 0.0
        for a, c in zip(x0.split(self.cfg.batch_size), cond.split(self.cfg.batch_size)):
            with self._autocast():
                loss, _ = video.training_loss(a.to(self.device), c.to(self.device), generator=generator)
            total += loss.item() * len(a)
        return total / len(x0)

    # ---- files ---------------------------------------------------------------------------------------------
    def _checkpoint(self, state: dict) -> None:
        state["rng"] = distributed.gather_rng_states(self.dist)  # collective: every rank takes part
        state["config"] = json.dumps(self.cfg.to_dict())
        if self.dist.is_main:
            self.checkpoints.save(state)
        distributed.barrier(self.dist)

    def _save_model(self, out: Path) -> None:
        cfg = self.cfg
        provenance = {
            "trainer": "diffusion_reward.training", "preset": cfg.preset, "seed": cfg.seed,
            "data": self.provenance, "train_episodes": len(self.train_eps), "val_episodes": len(self.val_eps),
            "tasks": sorted({e.task for e in self.train_eps}), "world_size": self.dist.world_size,
            "config": cfg.to_dict(), **self.summary,
        }
        self.model.provenance |= provenance | {"training_steps": cfg.codec_steps + cfg.video_steps}
        self.model.save(out)


def _check_finite(loss: torch.Tensor, phase: str, step: int) -> None:
    """A diverged run stops here, before a NaN reaches the weights: no model file is written."""
    if not torch.isfinite(loss).all():
        raise UserError(f"{phase} training diverged at step {step + 1} (loss {loss.item()}); lower the learning "
                        "rate or check the data. No model was written; checkpoints before the divergence are kept.")


def codebook_usage(tokens: list[torch.Tensor], num_codes: int) -> dict:
    """How much of the codebook the tokenised frames use: distinct codes overall, per episode and per frame."""
    flat = torch.cat([t.flatten() for t in tokens])
    counts = torch.bincount(flat, minlength=num_codes).double()
    p = counts[counts > 0] / counts.sum()
    return {"num_codes": num_codes, "codes_used": int((counts > 0).sum()),
            "perplexity": float(torch.exp(-(p * p.log()).sum())),
            "codes_per_episode": float(np.mean([len(torch.unique(t)) for t in tokens])),
            "codes_per_frame": float(np.mean([len(torch.unique(f)) for t in tokens for f in t]))}


def _adaptive_weight(rec_loss: torch.Tensor, g_loss: torch.Tensor, last_layer: torch.Tensor) -> torch.Tensor:
    """Upstream's GAN weight: 0.8 * |grad rec| / (|grad gan| + 1e-4) on the decoder's last conv, in [0, 1e4]."""
    g_rec = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    g_gan = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    return (0.8 * g_rec.norm() / (g_gan.norm() + 1e-4)).clamp(0.0, 1e4).detach()


def _copy_with_state(module: torch.nn.Module, state: dict) -> torch.nn.Module:
    clone = copy.deepcopy(module)
    clone.load_state_dict(state)
    return clone.eval()


def _concat_frames(episodes) -> np.ndarray:
    return np.concatenate([e.frames for e in episodes]) if episodes else np.zeros((0, 1, 1, 3), np.uint8)


def _evenly_spaced(t: torch.Tensor, n: int) -> torch.Tensor:
    return t if len(t) <= n else t[torch.linspace(0, len(t) - 1, n).long()]


def _scalar(v) -> float:
    return float(v.item()) if isinstance(v, torch.Tensor) else float(v)
