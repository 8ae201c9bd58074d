"""Convert the authors' VQ-Diffusion checkpoint (+ hydra config, + optional VQGAN checkpoint and statistics YAML).

Effective weights are the ones the authors' reward code uses: the transformer from `best.pth["ema"]` and the codec
from `best.pth["model"]["content_codec.model.*"]`. A separate `vqgan.pt` is only a cross-check (or the codec source
when best.pth carries no codec copy). Every tensor key must map; the only entries left out are documented non-weights:
`optimizer_and_scheduler`, `clip_grad_norm`, epoch counters, the non-EMA transformer copy `model["transformer.*"]`
and the unused causal masks `...attn2.mask`. Files are read with `torch.load(weights_only=True)` only.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any

import torch
import yaml

from ..errors import UserError
from ..models.model_file import RewardModel, software_version, utc_now
from ..models.presets import CodecConfig, RewardModelConfig, VideoConfig
from ..models.video import alpha_schedule

_CODEC_PREFIX = "content_codec.model."
_TRANSFORMER_PREFIX = "transformer."
_NON_WEIGHT_ENTRIES = {"last_epoch", "last_iter", "clip_grad_norm", "optimizer_and_scheduler", "model", "ema"}
_UNUSED_KEY = re.compile(r"(^|\.)blocks\.\d+\.attn2\.mask$")
# fixed in the upstream code, not in its config
_UPSTREAM_ATTN_RESOLUTIONS, _UPSTREAM_RES_BLOCKS, _UPSTREAM_NORM_GROUPS = (16,), 2, 32
_REQUIRED_CHOICES = {"attn_type": "selfcross", "mlp_type": "conv_mlp", "block_activate": "GELU2",
                     "timestep_type": "adalayernorm"}


def _get(d: Any, path: str):
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            raise UserError(f"upstream config has no `{path}`; is this the video model's .hydra/config.yaml?")
        d = d[part]
    return d


def config_from_hydra(cfg: dict) -> RewardModelConfig:
    """Model sizes from the authors' VQ-Diffusion hydra config (`exp_local/video_models/vqdiffusion/D/.hydra/config.yaml`)."""
    try:
        return _config_from_hydra(cfg)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"upstream config has a missing or non-numeric model size ({type(exc).__name__}: {exc}); "
                        "resolve hydra interpolations (${...}) first") from None


def _config_from_hydra(cfg: dict) -> RewardModelConfig:
    p = _get(cfg, "model.params")
    args = _get(p, "content_codec_config.params.args")
    diff = _get(p, "diffusion_config.params")
    tr = _get(diff, "transformer_config.params")
    ce = _get(diff, "condition_emb_config.params")
    for key, want in _REQUIRED_CHOICES.items():
        if tr.get(key, want) != want:
            raise UserError(f"upstream transformer uses {key}={tr[key]!r}; only {want!r} is supported")
    if diff.get("alpha_init_type", "alpha1") != "alpha1":
        raise UserError(f"upstream alpha_init_type {diff['alpha_init_type']!r} is not supported (only alpha1)")
    if list(diff.get("mask_weight", [1, 1])) != [1, 1]:
        raise UserError(f"upstream mask_weight {diff['mask_weight']} is not supported (only [1, 1])")
    if args.get("image_channels", 3) != 3:
        raise UserError("only RGB (image_channels 3) upstream codecs are supported")
    codec = CodecConfig(channels=tuple(int(c) for c in args["channels"]), latent_dim=int(args["latent_dim"]),
                        num_codes=int(args["num_codebook_vectors"]), image_size=int(args["resolution"]),
                        attn_resolutions=_UPSTREAM_ATTN_RESOLUTIONS, num_res_blocks=_UPSTREAM_RES_BLOCKS,
                        beta=float(args.get("beta", 0.25)), norm_groups=_UPSTREAM_NORM_GROUPS)
    codec.validate()
    grid = [int(s) for s in tr["content_spatial_size"]]
    if grid != [codec.latent_size] * 2 or int(args.get("latent_size", codec.latent_size)) != codec.latent_size:
        raise UserError(f"upstream content_spatial_size {grid} does not match the codec's latent grid "
                        f"{codec.latent_size}x{codec.latent_size}")
    if int(ce["embed_dim"]) != int(tr["condition_dim"]) or int(ce["num_embed"]) != codec.num_codes:
        raise UserError("upstream condition embedding sizes do not match condition_dim / the codebook size")
    video = VideoConfig(n_layer=int(tr["n_layer"]), n_embd=int(tr["n_embd"]), n_head=int(tr["n_head"]),
                        condition_dim=int(tr["condition_dim"]), mlp_hidden_times=int(tr["mlp_hidden_times"]),
                        num_cond_frames=int(ce.get("num_cond_frames", 2)), frame_skip=int(p.get("frame_skip", 1)),
                        diffusion_steps=int(diff["diffusion_step"]), context_embedding="upstream",
                        auxiliary_loss_weight=float(diff.get("auxiliary_loss_weight", 0.0)),
                        adaptive_auxiliary_loss=bool(diff.get("adaptive_auxiliary_loss", False)))
    out = RewardModelConfig(codec=codec, video=video, preset="imported")
    out.validate()
    return out


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path} does not exist") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not a readable YAML file ({str(exc).splitlines()[0]})") from None


def _torch_load(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle/zip errors of every kind; weights_only refuses code objects
        # torch's own message advises weights_only=False (running the file's code): never quoted
        raise UserError(f"{path} is not a loadable torch checkpoint with weights only (damaged, empty, or it holds "
                        f"pickled objects other than tensors: {type(exc).__name__}); refusing to load it") from None


def read_task_entries(path: Path, task: str | None, what: str) -> dict:
    """The `{task: ...}` mapping of an upstream statistics YAML (`what` names its schema), only `task` when given."""
    data = _load_yaml(path)
    if not isinstance(data, dict):
        raise UserError(f"{path} is not an upstream {what}")
    if task is not None:
        if task not in data:
            raise UserError(f"{path} has no statistics for task {task!r}; it has {', '.join(map(str, data))}")
        data = {task: data[task]}
    return data


def read_upstream_stats(path: Path, task: str | None) -> dict[str, dict[int, tuple[float, float]]]:
    """`{task: {skip_step: [mean, std]}}` -> {task: {skip: (mean, std)}} (only `task` when given)."""
    data = read_task_entries(path, task, "statistics file ({task: {skip_step: [mean, std]}})")
    out: dict[str, dict[int, tuple[float, float]]] = {}
    for name, per_skip in data.items():
        try:
            out[str(name)] = {int(skip): (float(ms[0]), float(ms[1])) for skip, ms in per_skip.items()}
        except (AttributeError, TypeError, ValueError, IndexError):
            raise UserError(f"{path}: statistics of task {name!r} are not {{skip_step: [mean, std]}}") from None
    return out


def _reward_type_from_path(path: Path) -> str | None:
    parts = set(path.parts)
    found = [t for t in ("entropy", "likelihood") if t in parts]
    return found[0] if len(found) == 1 else None


def import_upstream(video_checkpoint, video_config, codec_checkpoint=None, stats=None, task=None,
                    reward_type=None) -> RewardModel:
    video_checkpoint, video_config = Path(video_checkpoint), Path(video_config)
    config = config_from_hydra(_load_yaml(video_config) or {})
    ckpt = _torch_load(video_checkpoint)
    if not isinstance(ckpt, dict) or "ema" not in ckpt:
        raise UserError(f"{video_checkpoint} is not an upstream VQ-Diffusion checkpoint (no `ema` entry)")
    unknown = sorted(set(ckpt) - _NON_WEIGHT_ENTRIES)
    if unknown:
        raise UserError(f"{video_checkpoint} has entries this importer does not know: {', '.join(map(str, unknown))}")
    model_sd = ckpt.get("model") or {}
    other = sorted(k for k in model_sd if not k.startswith((_CODEC_PREFIX, _TRANSFORMER_PREFIX)))
    if other:
        raise UserError(f"{video_checkpoint} `model` has keys that are neither codec nor transformer: {other[:5]}")

    tensors = {f"video.{k}": v for k, v in ckpt["ema"].items() if not _UNUSED_KEY.search(k)}
    codec_sd = {k[len(_CODEC_PREFIX):]: v for k, v in model_sd.items() if k.startswith(_CODEC_PREFIX)}
    provenance: dict[str, Any] = {}
    if codec_checkpoint is not None:
        codec_file = _torch_load(Path(codec_checkpoint))
        if not isinstance(codec_file, dict):
            raise UserError(f"{codec_checkpoint} is not an upstream VQGAN state_dict")
        if not codec_sd:
            codec_sd, provenance["codec_source"] = codec_file, str(codec_checkpoint)
        else:
            provenance["codec_crosscheck"] = _compare(codec_sd, codec_file)
    if not codec_sd:
        raise UserError(f"{video_checkpoint} carries no codec weights; pass the VQGAN with `codec_checkpoint`")
    tensors.update({f"codec.{k}": v for k, v in codec_sd.items()})

    model = RewardModel(config)
    model.load_weight_tensors({k: v.float() for k, v in tensors.items()}, source=str(video_checkpoint))
    _check_schedule(model, video_checkpoint)
    model.provenance = {
        "created": utc_now(), "software_version": software_version(), "training_steps": ckpt.get("last_iter"),
        "imported_from": {"video_checkpoint": str(video_checkpoint), "sha256": _sha256(video_checkpoint),
                          "video_config": str(video_config), "weights": "ema transformer + best.pth codec",
                          "last_epoch": ckpt.get("last_epoch"),
                          "codec_checkpoint": None if codec_checkpoint is None else str(codec_checkpoint),
                          "statistics": None if stats is None else str(stats), **provenance},
    }
    if stats is not None:
        add_upstream_stats(model, Path(stats), task, reward_type)
    return model.eval()


def add_upstream_stats(model: RewardModel, path: Path, task: str | None, reward_type: str | None) -> None:
    """Upstream statistics were computed by the authors' code with 1 sample; likelihood ones with its context layout
    (the scored frame inside its own condition), so they are stored for `likelihood_compat` scoring."""
    reward_type = reward_type or _reward_type_from_path(path)
    if reward_type is None:
        raise UserError(f"cannot tell the reward type of {path} from its path; pass `reward_type` entropy|likelihood")
    for name, per_skip in read_upstream_stats(path, task).items():
        for skip, (mean, std) in per_skip.items():
            model.set_stats(name, reward_type, skip, 1, mean, std, likelihood_compat=reward_type == "likelihood",
                            source=f"upstream:{path}")


def _compare(a: dict, b: dict) -> str:
    if set(a) != set(b):
        raise UserError("the VQGAN checkpoint and the codec inside best.pth have different keys: "
                        f"{sorted(set(a) ^ set(b))[:5]}")
    diff = max(float((a[k].float() - b[k].float()).abs().max()) if a[k].numel() else 0.0 for k in a)
    return "identical" if diff == 0 else f"differs (max abs {diff:.3g}); used the best.pth copy, as upstream does"


def _check_schedule(model: RewardModel, source: Path) -> None:
    """The stored schedule buffers must be the alpha1 schedule of the config (else the config does not fit the file)."""
    at, _, _, att, _, ctt = alpha_schedule(model.video.num_timesteps, model.video.num_codes)
    for name, values in (("log_at", at), ("log_cumprod_at", att), ("log_cumprod_ct", ctt)):
        a, b = torch.log(torch.tensor(values)).float(), getattr(model.video, name)
        finite = torch.isfinite(a)
        if not torch.equal(finite, torch.isfinite(b)) or (a[finite] - b[finite]).abs().max() > 1e-4:
            raise UserError(f"{source}: noise schedule `{name}` does not match the config's alpha1 schedule")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
