"""`RewardModel`: codec + video model in ONE self-describing safetensors file.

Weights are stored under `codec.*` and `video.*`; the safetensors metadata holds JSON for the format name and
version, the config, the standardisation statistics and the provenance. Loading never unpickles anything.
The config's `video_model` says which video model `video.*` is: "vqdiffusion" (Diffusion Reward; files that do not
say are this) or "videogpt" (VIPER), whose config is a VideoGPTConfig.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import math
import numbers
import os
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..checks import check_device
from ..errors import UserError
from ..reward_types import REWARD_TYPE_CHOICES, REWARD_TYPES
from .codec import Codec, frames_to_input
from .presets import RewardModelConfig, get_preset
from .video import VideoModel
from .videogpt import VideoGPT

FORMAT_NAME = "diffusion_reward.model"
FORMAT_VERSION = 1
_MAX_HEADER_BYTES = 100 * 1024 * 1024
STATS_FIELDS = ("task", "reward_type", "skip_step", "num_samples", "mean", "std")  # what scoring reads of an entry
TOKENIZE_BATCH = 64  # frames the codec encodes at once: bounds its activations (~75 MB for `tiny`; 256 frames
# held ~300 MB and were encoded no faster, into the same tokens)


def stats_key(task: str, reward_type: str, skip_step: int, num_samples: int, likelihood_compat: bool = False) -> str:
    key = f"{task}/{reward_type}/skip{int(skip_step)}/n{int(num_samples)}"
    return key + "/compat" if likelihood_compat else key


def software_version() -> str:
    from .. import __version__

    return __version__


class RewardModel(nn.Module):
    def __init__(self, config: RewardModelConfig):
        super().__init__()
        config.validate()
        self.config = config
        self.codec = Codec(config.codec)
        grid = config.codec.latent_size
        if config.video_model == "videogpt":
            self.video = VideoGPT(config.video, config.codec.num_codes, grid, code_dim=config.codec.latent_dim)
            self.video.use_codebook(self.codec.codebook.embedding)
        else:
            self.video = VideoModel(config.video, num_codes=config.codec.num_codes, grid=grid)
        self.stats: dict[str, dict[str, Any]] = {}
        self.provenance: dict[str, Any] = {}
        self.path: str | None = None

    # ------------------------------------------------------------------------------------------------ building
    @classmethod
    def from_config(cls, config: RewardModelConfig, seed: int = 0) -> "RewardModel":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = cls(config)
        model.provenance = {"created": utc_now(), "software_version": software_version(), "init_seed": seed,
                            "training_steps": 0}
        return model.eval()

    @classmethod
    def from_preset(cls, name: str, seed: int = 0, video_model: str = "vqdiffusion") -> "RewardModel":
        return cls.from_config(get_preset(name, video_model), seed=seed)

    # ------------------------------------------------------------------------------------- the Python API
    def fit(self, cfg) -> "RewardModel":
        """Train this model (codec, then video model) on `cfg.data` as `train-reward` does (a `TrainConfig`:
        steps, batches, checkpoints, resume; steps left at None take the model's preset's defaults, or cfg.preset's
        for a model built from a custom config). Writes cfg.out and keeps the trained weights here."""
        import dataclasses

        from ..training import PRESET_DEFAULTS, train_reward_model

        preset = self.config.preset if self.config.preset in PRESET_DEFAULTS else cfg.preset
        train_reward_model(dataclasses.replace(cfg, preset=preset, video_model=self.video_model,
                                               frame_skip=self.config.video.frame_skip), model=self)
        return self.eval()

    def compute_stats(self, data, task: str | None = None, progress: bool = True, **options):
        """Standardisation statistics of `task` over the expert episodes of `data` (HDF5 dataset or the authors'
        PNG video folder), stored in this model (save it to keep them); options are ScoreConfig's (reward_type,
        skip_step, num_samples, seed). Returns the RewardStats."""
        from ..reward.stats import stats_from_data
        from ..scoring_options import ScoreConfig

        return stats_from_data(self, str(data), task, ScoreConfig(**options), progress)

    def scorer(self, **options):
        """A RewardScorer of this model; options are ScoreConfig's (task=..., reward_type=..., dtype=..., ...):
        `.score_episode(frames)`, `.chunked()`, `.stream()`."""
        from ..reward import RewardScorer
        from ..scoring_options import ScoreConfig

        return RewardScorer(self, ScoreConfig(**options))

    @property
    def video_model(self) -> str:
        """"vqdiffusion" (Diffusion Reward) or "videogpt" (VIPER)."""
        return self.config.video_model

    @property
    def image_size(self) -> int:
        return self.config.codec.image_size

    @property
    def device(self) -> torch.device:
        return self.codec.quant_conv.weight.device

    @property
    def reward_type(self) -> str:
        """The reward type this model was validated with (provenance `reward_type`; if the file does not say,
        the paper's: entropy for Diffusion Reward, likelihood for VIPER): what `reward_type="auto"` scores."""
        return self.provenance.get("reward_type", "likelihood" if self.video_model == "videogpt" else "entropy")

    def resolve_reward_type(self, reward_type: str) -> str:
        if reward_type == "auto":
            return self.reward_type
        if reward_type == "viper":
            if self.video_model != "videogpt":
                raise UserError("reward type viper needs a VideoGPT model (train-reward --video-model videogpt or "
                                f"import-upstream of a VideoGPT checkpoint); {self.path or 'this model'} is "
                                "a VQ-Diffusion model (entropy, likelihood or likelihood_ratio)")
            return "likelihood"
        if reward_type not in REWARD_TYPES:
            raise UserError(f"reward type must be one of {', '.join(REWARD_TYPE_CHOICES)}, got {reward_type!r}")
        return reward_type

    # -------------------------------------------------------------------------------------------------- tokens
    @torch.no_grad()
    def tokenize(self, frames_u8, batch_size: int = TOKENIZE_BATCH) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) (numpy or torch) -> tokens (T, L) int64 on the model's device."""
        frames = torch.as_tensor(np.asarray(frames_u8) if not torch.is_tensor(frames_u8) else frames_u8)
        # channels-last input: oneDNN's convolutions run ~1.3x faster on this layout, with the same tokens
        # (bench/bench_codec_layout.py; tests/test_models_file.py checks the tokens are equal)
        out = [self.codec.encode(frames_to_input(frames[i:i + batch_size].to(self.device))
                                 .contiguous(memory_format=torch.channels_last))
               for i in range(0, len(frames), batch_size)]
        return torch.cat(out) if out else torch.zeros(0, self.codec.num_tokens, dtype=torch.long, device=self.device)

    # --------------------------------------------------------------------------------------------------- stats
    def stats_coordinates(self, skip_step: int, num_samples: int) -> tuple[int, int]:
        """(skip step, samples) a score depends on: a VideoGPT score has neither (one deterministic pass): (0, 1)."""
        return (0, 1) if self.video_model == "videogpt" else (int(skip_step), int(num_samples))

    def set_stats(self, task: str, reward_type: str, skip_step: int, num_samples: int, mean: float, std: float,
                  *, likelihood_compat: bool = False, source: str | None = None) -> None:
        if reward_type not in REWARD_TYPES:
            raise UserError(f"reward type must be one of {REWARD_TYPES}, got {reward_type!r}")
        _check_mean_std(f"statistics for {task!r}", mean, std)
        skip_step, num_samples = self.stats_coordinates(skip_step, num_samples)
        self.stats[stats_key(task, reward_type, skip_step, num_samples, likelihood_compat)] = {
            "task": task, "reward_type": reward_type, "skip_step": int(skip_step), "num_samples": int(num_samples),
            "likelihood_compat": bool(likelihood_compat), "mean": float(mean), "std": float(std),
            "source": source, "created": utc_now()}

    def get_stats(self, task: str, reward_type: str, skip_step: int, num_samples: int,
                  *, likelihood_compat: bool = False) -> tuple[float, float]:
        skip_step, num_samples = self.stats_coordinates(skip_step, num_samples)
        entry = self.stats.get(stats_key(task, reward_type, skip_step, num_samples, likelihood_compat))
        if entry is None:
            model = self.path or "MODEL"
            have = ", ".join(sorted(self.stats)) or "none"
            raise UserError(
                f"model has no statistics for task {task!r} ({reward_type}, skip {skip_step}, {num_samples} sample(s)"
                f"{', likelihood-compat' if likelihood_compat else ''}; it has: {have}); compute them with "
                f"`diffusion-reward stats --model {model} --data EXPERT_DATA --task {task}` (or "
                "`RewardModel.compute_stats`), or score raw, without standardisation")
        return entry["mean"], entry["std"]

    # --------------------------------------------------------------------------------------------- weights I/O
    def parameter_names(self) -> set[str]:
        """Names of the trained tensors in `weight_tensors()` (the rest are buffers, e.g. the diffusion schedule)."""
        return {f"{prefix}.{k}" for prefix, m in (("codec", self.codec), ("video", self.video))
                for k, _ in m.named_parameters()}

    def weight_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"codec.{k}": v for k, v in self.codec.state_dict().items()}
        tensors.update({f"video.{k}": v for k, v in self.video.state_dict().items()})
        return {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}

    @property
    def weights_hash(self) -> str:
        """sha256 over names, dtypes, shapes and contents of every tensor (independent of stats and provenance)."""
        h = hashlib.sha256()
        for name, t in sorted(self.weight_tensors().items()):
            h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        return h.hexdigest()

    def save(self, path: str | os.PathLike, weights_dtype: str = "float32") -> Path:
        """Write the model file. `weights_dtype="bfloat16"` stores the learned parameters in bf16 (half the size;
        buffers such as the diffusion schedule stay float32); loading casts them back to float32."""
        from safetensors.torch import save

        if weights_dtype not in ("float32", "bfloat16"):
            raise UserError(f"weights_dtype must be float32 or bfloat16, got {weights_dtype!r}")
        path = Path(path)
        self.provenance.setdefault("created", utc_now())
        self.provenance.setdefault("software_version", software_version())
        metadata = {
            "format": FORMAT_NAME, "format_version": str(FORMAT_VERSION),
            "config": json.dumps(self.config.to_dict()), "stats": json.dumps(self.stats),
            "provenance": json.dumps(self.provenance),
        }
        tensors = self.weight_tensors()
        if weights_dtype == "bfloat16":
            params = self.parameter_names()
            tensors = {k: v.to(torch.bfloat16) if k in params and v.is_floating_point() else v
                       for k, v in tensors.items()}
        # integrity: the sha256 of the tensor bytes (which do not depend on the metadata), checked at load
        metadata["tensors_sha256"] = _tensor_bytes_sha256(save(tensors, metadata=metadata))
        blob = save(tensors, metadata=metadata)
        atomic_write(path, blob)
        self.path = str(path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> "RewardModel":
        from safetensors.torch import load

        path = Path(path)
        check_device("device", str(device))
        if not path.is_file():
            raise UserError(f"model file {path} does not exist")
        data = path.read_bytes()
        header = _read_header(path, data)
        meta = header.get("__metadata__") or {}
        if meta.get("format") != FORMAT_NAME:
            raise UserError(f"{path} is a safetensors file but not a diffusion-reward model (format "
                            f"{meta.get('format')!r}); convert the authors' checkpoints with `diffusion-reward import-upstream`")
        try:
            version = int(meta.get("format_version", "0"))
            config = RewardModelConfig.from_dict(json.loads(meta["config"]))
            stats = json.loads(meta.get("stats", "{}"))
            provenance = json.loads(meta.get("provenance", "{}"))
        except (ValueError, KeyError) as exc:
            raise UserError(f"{path} has damaged model metadata ({exc})") from None
        except UserError as exc:  # a config whose sizes no model has (n_head 0, string channels, ...)
            raise UserError(f"{path} has an invalid model config: {exc}") from None
        if not isinstance(provenance, dict):
            raise UserError(f"{path} has damaged model metadata (provenance is not a mapping)")
        _check_stats(path, stats)
        if version > FORMAT_VERSION:
            raise UserError(f"{path} uses model format version {version}, newer than this software supports "
                            f"({FORMAT_VERSION}); upgrade diffusion-reward")
        if "tensors_sha256" in meta and meta["tensors_sha256"] != _tensor_bytes_sha256(data):
            raise UserError(f"{path} is damaged: its weights do not match the integrity hash stored when it was "
                            "saved (a changed or corrupted file); retrain it or restore a good copy")
        try:
            tensors = load(data)
        except Exception as exc:  # safetensors raises its own error types for damaged files
            raise UserError(f"{path} is damaged or truncated ({exc})") from None
        model = cls(config)
        model.load_weight_tensors(tensors, source=str(path))
        model.stats, model.provenance, model.path = stats, provenance, str(path)
        return model.to(device).eval()

    def load_weight_tensors(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        """Load `codec.*` / `video.*` tensors; every key must match in name and shape (UserError otherwise)."""
        expected = {f"codec.{k}": v for k, v in self.codec.state_dict().items()}
        expected.update({f"video.{k}": v for k, v in self.video.state_dict().items()})
        missing = sorted(set(expected) - set(tensors))
        unexpected = sorted(set(tensors) - set(expected))
        if missing or unexpected:
            raise UserError(f"{source} does not match its config: missing keys {_short(missing)}, "
                            f"unexpected keys {_short(unexpected)}")
        bad = [f"{k} {tuple(tensors[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
               if tuple(tensors[k].shape) != tuple(v.shape)]
        if bad:
            raise UserError(f"{source} has tensors of the wrong shape: {_short(bad)}")
        # a diverged training or a damaged file would make every reward NaN (buffers such as the diffusion
        # schedule's log(0) may hold -inf; trained parameters never)
        params = self.parameter_names()
        not_finite = sorted(k for k, v in tensors.items() if v.is_floating_point() and (
            v.isnan().any() or (k in params and v.isinf().any())))
        if not_finite:
            raise UserError(f"{source} has NaN or infinite weights in {_short(not_finite)}")
        for prefix, module in (("codec.", self.codec), ("video.", self.video)):
            module.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)})


def _check_mean_std(what: str, mean, std) -> None:
    numbers_ok = all(isinstance(x, numbers.Real) and math.isfinite(x) for x in (mean, std))
    if not (numbers_ok and std > 0):
        raise UserError(f"{what} need a finite mean and a positive std, got {mean!r}, {std!r}")


def _check_stats(path: Path, stats) -> None:
    """The statistics metadata: {key: {task, reward_type, skip_step, num_samples, mean, std, ...}}."""
    if not isinstance(stats, dict) or not all(isinstance(entry, dict) for entry in stats.values()):
        raise UserError(f"{path} has damaged model metadata (statistics are not {{key: {{task, mean, std, ...}}}})")
    for key, entry in stats.items():
        missing = [name for name in STATS_FIELDS if name not in entry]
        if missing:
            raise UserError(f"{path} has damaged statistics {key!r}: no {', '.join(missing)}; recompute them with "
                            "`diffusion-reward stats`")
        _check_mean_std(f"{path}: statistics {key!r}", entry["mean"], entry["std"])


def _tensor_bytes_sha256(blob: bytes) -> str:
    """sha256 of a safetensors blob's tensor data (everything after the JSON header)."""
    (n,) = struct.unpack("<Q", blob[:8])
    return hashlib.sha256(blob[8 + n:]).hexdigest()


def _read_header(path: Path, data: bytes) -> dict[str, Any]:
    not_ours = f"{path} is not a safetensors model file or is truncated"
    if len(data) < 8:
        raise UserError(not_ours)
    (n,) = struct.unpack("<Q", data[:8])
    if n > _MAX_HEADER_BYTES or 8 + n > len(data):
        raise UserError(not_ours)
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, ValueError):
        raise UserError(not_ours) from None
    if not isinstance(header, dict):
        raise UserError(not_ours)
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
               and "data_offsets" in v), default=0)
    if 8 + n + end > len(data):
        raise UserError(f"{path} is truncated ({len(data)} bytes, header promises {8 + n + end})")
    return header


def atomic_write(path: Path, blob: bytes) -> None:
    """Write to a temp file in the same folder, fsync, then os.replace: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.fchmod(fd, 0o666 & ~umask)  # a normal file's mode, not mkstemp's owner-only 0600
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _short(items: list[str], n: int = 5) -> str:
    if not items:
        return "none"
    return ", ".join(items[:n]) + (f" (+{len(items) - n} more)" if len(items) > n else "")


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
