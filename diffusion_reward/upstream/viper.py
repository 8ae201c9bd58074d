"""Convert the authors' VIPER model: their VideoGPT checkpoint (`videogpt.pt`) + hydra config (+ statistics YAML).

`videogpt.pt` is `torch.save(VideoGPTTransformer.state_dict())`: a flat dict of `vqgan.*` (the codec, the copy
VIPER actually scores with) and `transformer.*` (the GPT). Every key must map; the only entries left out are the
`transformer.blocks.N.attn.mask` buffers, which must be the causal lower triangle (models/videogpt.py builds it).
The config is `exp_local/video_models/videogpt/<domain>/.hydra/config.yaml` as hydra writes it, interpolations
(`${codec.code_dim}`, ...) unresolved: they are resolved here against the same file. Statistics are VIPER's schema,
`{task: [mean, std]}` (no skip step: a VideoGPT score has none).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from ..errors import UserError
from ..models.model_file import RewardModel, software_version, utc_now
from ..models.presets import CodecConfig, RewardModelConfig, VideoGPTConfig
from .importer import _UPSTREAM_ATTN_RESOLUTIONS, _UPSTREAM_NORM_GROUPS, _UPSTREAM_RES_BLOCKS, _load_yaml, \
    _reward_type_from_path, _sha256, _torch_load, read_task_entries

_MASK_KEY = re.compile(r"^transformer\.blocks\.\d+\.attn\.mask$")
_INTERPOLATION = re.compile(r"\$\{([^${}]+)\}")


def upstream_video_model(config_path) -> str:
    """"videogpt" or "vqdiffusion", from the hydra config: VideoGPT's has top-level `transformer` and `codec` nodes
    (VQ-Diffusion's a `model` node)."""
    cfg = _load_yaml(Path(config_path))
    videogpt = isinstance(cfg, dict) and isinstance(cfg.get("transformer"), dict) and isinstance(cfg.get("codec"), dict)
    return "videogpt" if videogpt else "vqdiffusion"


def resolve_interpolations(cfg: dict) -> dict:
    """Resolve hydra's `${a.b}` references against the config's root (a whole-value reference keeps its type)."""

    def lookup(path: str, seen: tuple[str, ...]):
        if path in seen:
            raise UserError(f"upstream config has a circular interpolation ${{{path}}}")
        node: Any = cfg
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"upstream config interpolation ${{{path}}} names no field of the config")
            node = node[part]
        return resolve(node, seen + (path,))

    def resolve(value, seen=()):
        if isinstance(value, dict):
            return {k: resolve(v, seen) for k, v in value.items()}
        if isinstance(value, list):
            return [resolve(v, seen) for v in value]
        if not isinstance(value, str):
            return value
        whole = _INTERPOLATION.fullmatch(value)
        if whole:
            return lookup(whole.group(1), seen)
        return _INTERPOLATION.sub(lambda m: str(lookup(m.group(1), seen)), value)

    return resolve(cfg)


def config_from_videogpt_hydra(raw: dict) -> RewardModelConfig:
    cfg = resolve_interpolations(raw)
    try:
        return _config(cfg)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(f"upstream VideoGPT config has a missing or non-numeric field ({type(exc).__name__}: "
                        f"{exc})") from None


def _config(cfg: dict) -> RewardModelConfig:
    c, t = cfg["codec"], cfg["transformer"]
    if not cfg.get("use_vqemb", t.get("use_vqemb", True)):
        raise UserError("upstream VideoGPT with use_vqemb false (token-id inputs) is not supported")
    if int(cfg.get("sos_token", 0)) != 0:
        raise UserError(f"upstream sos_token {cfg['sos_token']} is not supported (only 0, a zero SOS vector)")
    if int(c.get("image_channels", 3)) != 3:
        raise UserError("only RGB (image_channels 3) upstream codecs are supported")
    if int(c["code_dim"]) != int(c["latent_dim"]):
        raise UserError(f"upstream codec code_dim {c['code_dim']} differs from latent_dim {c['latent_dim']}")
    codec = CodecConfig(channels=tuple(int(x) for x in c["channels"]), latent_dim=int(c["latent_dim"]),
                        num_codes=int(c["num_codebook_vectors"]), image_size=int(c["resolution"]),
                        attn_resolutions=_UPSTREAM_ATTN_RESOLUTIONS, num_res_blocks=_UPSTREAM_RES_BLOCKS,
                        beta=float(c.get("beta", 0.25)), norm_groups=_UPSTREAM_NORM_GROUPS)
    codec.validate()
    if int(c.get("latent_size", codec.latent_size)) != codec.latent_size:
        raise UserError(f"upstream codec latent_size {c['latent_size']} does not match its channels and resolution "
                        f"({codec.latent_size})")
    if int(t["vocab_size"]) != codec.num_codes:
        raise UserError(f"upstream transformer vocab_size {t['vocab_size']} differs from the codebook size "
                        f"{codec.num_codes}")
    dropouts = {float(t.get(k, 0.0)) for k in ("embd_pdrop", "resid_pdrop", "attn_pdrop")}
    if len(dropouts) != 1:
        raise UserError(f"upstream transformer dropouts differ ({sorted(dropouts)}); only one shared value is "
                        "supported")
    video = VideoGPTConfig(n_layer=int(t["n_layer"]), n_embd=int(t["n_embd"]), n_head=int(t["n_head"]),
                           block_size=int(t["block_size"]), pkeep=float(cfg.get("pkeep", 0.8)),
                           dropout=dropouts.pop(), num_cond_frames=int(cfg.get("num_frames", 2)),
                           frame_skip=int(cfg.get("frame_skip", 1)))
    out = RewardModelConfig(codec=codec, video=video, preset="imported")
    out.validate()
    return out


def import_upstream_videogpt(checkpoint, config, stats=None, task=None, reward_type=None) -> RewardModel:
    checkpoint, config = Path(checkpoint), Path(config)
    model_config = config_from_videogpt_hydra(_load_yaml(config))
    sd = _torch_load(checkpoint)
    if not isinstance(sd, dict) or not any(str(k).startswith("transformer.") for k in sd):
        raise UserError(f"{checkpoint} is not an upstream VideoGPT checkpoint (no `transformer.*` weights)")
    other = sorted(str(k) for k in sd if not str(k).startswith(("vqgan.", "transformer.")))
    if other:
        raise UserError(f"{checkpoint} has keys that are neither codec (vqgan.*) nor GPT (transformer.*): {other[:5]}")
    for key in (k for k in sd if _MASK_KEY.match(k)):
        mask = sd[key]
        n = mask.shape[-1]
        if mask.shape != (1, 1, n, n) or not torch.equal(mask.reshape(n, n), torch.ones(n, n).tril()):
            raise UserError(f"{checkpoint}: {key} is not a causal mask; this is not a causal VideoGPT")
    tensors = {f"codec.{k[len('vqgan.'):]}": v for k, v in sd.items() if k.startswith("vqgan.")}
    tensors |= {f"video.{k}": v for k, v in sd.items() if k.startswith("transformer.") and not _MASK_KEY.match(k)}
    model = RewardModel(model_config)
    model.load_weight_tensors({k: v.float() for k, v in tensors.items()}, source=str(checkpoint))
    model.provenance = {
        "created": utc_now(), "software_version": software_version(), "reward_type": "likelihood",
        "imported_from": {"video_checkpoint": str(checkpoint), "sha256": _sha256(checkpoint),
                          "video_config": str(config), "weights": "videogpt.pt (codec copy + GPT)",
                          "statistics": None if stats is None else str(stats)},
    }
    if stats is not None:
        add_viper_stats(model, Path(stats), task, reward_type)
    return model.eval()


def read_viper_stats(path: Path, task: str | None) -> dict[str, tuple[float, float]]:
    """`{task: [mean, std]}` -> {task: (mean, std)} (only `task` when given)."""
    data = read_task_entries(path, task, "VIPER statistics file ({task: [mean, std]})")
    try:
        return {str(name): (float(ms[0]), float(ms[1])) for name, ms in data.items()}
    except (TypeError, ValueError, IndexError, KeyError):
        raise UserError(f"{path}: VIPER statistics are {{task: [mean, std]}}") from None


def add_viper_stats(model: RewardModel, path: Path, task: str | None, reward_type: str | None) -> None:
    reward_type = reward_type or _reward_type_from_path(path)
    if reward_type is None:
        raise UserError(f"cannot tell the reward type of {path} from its path; pass `reward_type` entropy|likelihood")
    for name, (mean, std) in read_viper_stats(path, task).items():
        model.set_stats(name, reward_type, 0, 1, mean, std, source=f"upstream:{path}")
