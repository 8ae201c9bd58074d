"""Offline policy training with d3rlpy on a reward-labelled dataset.

    config = TrainPolicyConfig(data="labelled.hdf5", out="runs/iql", algo="iql", obs="image")
    policy_dir = train_policy(config)
    algo, meta = load_policy(policy_dir)        # the d3rlpy algorithm, rebuilt without unpickling

The policy folder's layout is written down in `offline/policy_folder.py`.
The run is written to `<out>.partial/` and renamed to `<out>` when it completes.
"""
from __future__ import annotations

from . import legacy_gym  # noqa: F401, I001  (before d3rlpy: swallows legacy gym's import notice)

import json
import os
import pickle
import shutil
from dataclasses import MISSING, asdict, dataclass
from pathlib import Path
from typing import Any

import d3rlpy
import numpy as np
import torch
from d3rlpy.base import LearnableConfigWithShape
from d3rlpy.logging.file_adapter import default_json_encoder
from d3rlpy.models.encoders import VectorEncoderFactory
from d3rlpy.preprocessing import (MinMaxActionScaler, PixelObservationScaler, StandardObservationScaler,
                                  TupleObservationScaler)
from d3rlpy.torch_utility import map_location

from diffusion_reward import __version__
from diffusion_reward.checks import check_device, check_int, check_memory, check_seed, config_field
from diffusion_reward.errors import UserError
from diffusion_reward.outputs import check_writable, refuse_writing_into_inputs

from .encoders import DrQPixelEncoderFactory
from .mdp import MDPInfo, MDPSpec, build_mdp, mdp_field
from .policy_folder import POLICY_FORMAT, PolicySpec, read_json_object, read_policy_meta

ALGOS = ("iql", "cql", "td3plusbc", "bc")
# memory of one training sample (d3rlpy on CPU, measured for iql): float32 observation copies, gradients and
# encoder activations per observation value, plus the 256-unit MLP heads
SAMPLE_BYTES_PER_OBS_VALUE, SAMPLE_BYTES_FIXED = 64, 16 << 10


@dataclass
class TrainPolicyConfig:
    """What `train-policy` does; its fields are the command's flags (`cli/config_args.py`)."""

    data: str = config_field(MISSING, "dataset with reward labels (`relabel` output)", metavar="LABELLED")
    out: str = config_field(MISSING, "new policy folder (never overwritten)", metavar="POLICY_DIR")
    algo: str = config_field("iql", "d3rlpy algorithm", choices=ALGOS)
    reward: str = mdp_field("reward")
    alpha: float = mdp_field("alpha")
    beta: float = mdp_field("beta")
    obs: str = mdp_field("obs")
    frame_stack: int = mdp_field("frame_stack")
    steps: int = config_field(10_000, "gradient steps (default: 10000)", metavar="N")
    batch_size: int = config_field(64, "transitions per gradient step")
    checkpoint_every: int = config_field(1_000, "save checkpoints/step_N.pt and a metrics line every N steps "
                                                "(default: 1000)", metavar="N")
    seed: int = config_field(0, "seed of initialisation and batch sampling")
    device: str = config_field("cpu", "torch device: cpu, cuda or cuda:N")
    mask: str | None = config_field(None, "train only on the episodes of this filter key (e.g. train)")
    show_progress: bool = True
    onnx: bool = config_field(False, "also export export/policy.onnx")

    def __post_init__(self):
        if self.algo not in ALGOS:
            raise UserError(f"`algo` must be one of {', '.join(ALGOS)}, got {self.algo!r}.")
        for flag, value in (("steps", self.steps), ("batch_size", self.batch_size),
                            ("checkpoint_every", self.checkpoint_every)):
            check_int(flag, value, 1)
        if self.steps > self.checkpoint_every and self.steps % self.checkpoint_every:
            raise UserError(f"`steps` ({self.steps}) must be a multiple of `checkpoint_every` "
                            f"({self.checkpoint_every}).")
        check_seed("seed", self.seed)
        check_device("device", self.device)
        self.mdp_spec  # validates obs, frame_stack, alpha, beta

    def check_batch_memory(self, info: MDPInfo) -> None:
        """UserError when one batch of `batch_size` samples of this data would not fit in memory."""
        image_values = 3 * self.frame_stack * info.image_size ** 2 if self.obs != "state" else 0
        state_values = (info.state_dim or 0) if self.obs != "image" else 0
        sample_bytes = SAMPLE_BYTES_PER_OBS_VALUE * (image_values + state_values) + SAMPLE_BYTES_FIXED
        check_memory(self.batch_size * sample_bytes,
                     f"`batch_size` {self.batch_size}", "use a smaller `batch_size`", self.device)

    @property
    def mdp_spec(self) -> MDPSpec:
        return MDPSpec(obs=self.obs, frame_stack=self.frame_stack, reward=self.reward, alpha=self.alpha,
                       beta=self.beta)


def quiet_d3rlpy_logs() -> None:
    """Keep d3rlpy's structlog output to warnings: our own lines and its tqdm bar say what is happening."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def d3rlpy_device(device: str) -> str:
    return device if ":" in device else f"{device}:0"


def make_algo(config: TrainPolicyConfig, action_dim: int):
    """The d3rlpy algorithm for `config`, with our encoders and scalers; built lazily by `fit`."""
    if config.obs == "state":
        encoder, scaler = VectorEncoderFactory(hidden_units=[256, 256]), StandardObservationScaler()
    else:
        encoder = DrQPixelEncoderFactory()
        scaler = (PixelObservationScaler() if config.obs == "image" else
                  TupleObservationScaler(observation_scalers=[PixelObservationScaler(),
                                                              StandardObservationScaler()]))
    common = dict(batch_size=config.batch_size, observation_scaler=scaler,
                  action_scaler=MinMaxActionScaler(minimum=np.full(action_dim, -1.0, np.float32),
                                                   maximum=np.full(action_dim, 1.0, np.float32)))
    two = dict(actor_encoder_factory=encoder, critic_encoder_factory=encoder)
    if config.algo == "bc":
        algo_config = d3rlpy.algos.BCConfig(encoder_factory=encoder, **common)
    elif config.algo == "iql":
        algo_config = d3rlpy.algos.IQLConfig(value_encoder_factory=encoder, **two, **common)
    elif config.algo == "cql":  # fewer action samples than the default 10: CQL is slow on CPU
        algo_config = d3rlpy.algos.CQLConfig(n_action_samples=4, **two, **common)
    else:
        algo_config = d3rlpy.algos.TD3PlusBCConfig(**two, **common)
    return algo_config.create(device=d3rlpy_device(config.device))


class _RunLogger:
    """d3rlpy LoggerAdapter: metrics as JSON lines and weights-only checkpoints inside the run folder."""

    def __init__(self, run_dir: Path, steps_per_epoch: int):
        self.run_dir, self.steps_per_epoch, self.row = run_dir, steps_per_epoch, {}
        (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)

    def create(self, algo, experiment_name: str, n_steps_per_epoch: int) -> "_RunLogger":
        return self

    def write_params(self, params: dict[str, Any]) -> None:
        (self.run_dir / "params.json").write_text(json.dumps(params, default=default_json_encoder, indent=2))

    def before_write_metric(self, epoch: int, step: int) -> None:
        self.row = {"epoch": epoch, "step": step}

    def write_metric(self, epoch: int, step: int, name: str, value: float) -> None:
        self.row[name] = float(value)

    def after_write_metric(self, epoch: int, step: int) -> None:
        with open(self.run_dir / "metrics.jsonl", "a") as f:
            f.write(json.dumps(self.row) + "\n")

    def save_model(self, step: int, algo) -> None:  # d3rlpy passes the total step count
        algo.save_model(str(self.run_dir / "checkpoints" / f"step_{step}.pt"))

    def watch_model(self, epoch: int, step: int) -> None:
        pass

    def close(self) -> None:
        pass


def train_policy(config: TrainPolicyConfig) -> Path:
    out = Path(config.out)
    run_dir = out.with_name(out.name + ".partial")
    for path in (out, run_dir):  # the run folder of an interrupted run is deleted below
        refuse_writing_into_inputs(path, {"`data`": config.data})
    if out.exists():
        raise UserError(f"{out} already exists; choose another `out` (nothing was overwritten).")
    check_writable(out)
    dataset, info = build_mdp(config.data, config.mdp_spec, config.mask)
    config.check_batch_memory(info)
    print(f"dataset: {info.episodes} episodes, {info.steps} steps -> {info.transitions} transitions "
          f"({info.terminal_episodes} success-terminated, {info.timeout_episodes} time-limited: their last step "
          f"has no next observation)")
    label = "the dataset's sparse rewards" if info.label is None else f"reward label {info.label!r}"
    print(f"reward: {info.reward_formula} from {label}, alpha={config.alpha}, beta={config.beta}; RND {info.rnd}")
    if info.clipped_action_values:
        print(f"warning: {info.clipped_action_values} action values outside [-1, 1] were clipped")

    if run_dir.exists():
        shutil.rmtree(run_dir)  # an interrupted earlier run of this same output
    run_dir.mkdir(parents=True)
    d3rlpy.seed(config.seed)
    algo = make_algo(config, info.action_dim)
    steps_per_epoch = min(config.checkpoint_every, config.steps)
    algo.fit(dataset, n_steps=config.steps, n_steps_per_epoch=steps_per_epoch,
             experiment_name="run", with_timestamp=False, show_progress=config.show_progress,
             logger_adapter=_RunLogger(run_dir, steps_per_epoch))
    algo.save_model(str(run_dir / "model.pt"))

    spec = PolicySpec(obs=config.obs, frame_stack=config.frame_stack, image_size=info.image_size,
                      state_dim=info.state_dim, action_dim=info.action_dim, algo=config.algo,
                      task=info.env_args.get("task"), action_repeat=info.env_args.get("action_repeat"),
                      camera=info.env_args.get("camera"), source_dataset=info.source_dataset,
                      software_version=__version__)
    meta = {"format": POLICY_FORMAT, "format_version": 1, "d3rlpy_version": d3rlpy.__version__, **spec.to_dict(),
            "train_config": asdict(config), "dataset": info.to_dict(), "params": "params.json", "model": "model.pt"}
    (run_dir / "policy.json").write_text(json.dumps(meta, indent=2, default=default_json_encoder))

    from .export import export_policy  # after the weights are saved: the export rebuilds from the folder
    export_policy(run_dir, run_dir / "export", onnx=config.onnx)
    os.replace(run_dir, out)
    return out


def load_policy(policy_dir: str | Path, device: str = "cpu", checkpoint: str | None = None):
    """(d3rlpy algorithm, policy.json dict); rebuilt from params.json + weights, never unpickled.

    `checkpoint` (default: the final weights) must lie inside `policy_dir`.
    """
    policy_dir = Path(policy_dir)
    meta = read_policy_meta(policy_dir)
    weights = (policy_dir / (checkpoint or meta["model"])).resolve()
    if not weights.is_relative_to(policy_dir.resolve()):
        raise UserError(f"the weights {checkpoint or meta['model']} lie outside the policy folder {policy_dir}; "
                        "give a path inside it, e.g. `checkpoint` checkpoints/step_1000.pt")
    if not weights.is_file():
        raise UserError(f"{weights} does not exist.")
    params = policy_dir / meta["params"]
    try:
        config = LearnableConfigWithShape.deserialize_from_dict(read_json_object(params))
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{params} is damaged: not the d3rlpy parameters of a policy ({type(exc).__name__}: "
                        f"{exc})") from None
    algo = config.create(d3rlpy_device(device))
    _load_weights(algo, weights)
    return algo, meta


def _load_weights(algo, weights: Path) -> None:
    """d3rlpy's `load_model` with `torch.load(weights_only=True)`: d3rlpy passes nothing, which
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1 turns into a full unpickling that runs any code in the file."""
    device = algo.impl.device
    try:
        state = torch.load(weights, map_location=map_location(device), weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError):
        raise UserError(f"{weights} is not a readable weights-only torch checkpoint (damaged, or it holds pickled "
                        "objects other than tensors); refusing to load it") from None
    modules = algo.impl.modules.create_checkpointer(device).modules
    missing = sorted(set(modules) - set(state)) if isinstance(state, dict) else sorted(modules)
    if missing:
        raise UserError(f"{weights} is not a checkpoint of this policy: it lacks {', '.join(missing)}")
    try:
        for name, module in modules.items():
            module.load_state_dict(state[name])
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{weights} does not fit this policy's networks: {str(exc).splitlines()[0]}") from None
