"""Hostile command lines: each gives exit 2, one `error:` line, and leaves every file already written untouched.

One small world of real files is built once: a dataset, a reward model, frames, upstream files, a trained
policy folder with a damaged, a malicious and an outside checkpoint, and damaged copies of each kind of input
(hostile_files.py). Every case runs the real CLI in-process on it and compares the md5 of every file in the
world before and after. The table's classes: outputs that would replace an input or an earlier output,
argparse's own errors, every numeric flag out of range (and the flags that scale memory past the cap), devices
this machine lacks, damaged files of every kind, unwritable outputs, unsafe pickles.
"""
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hostile_files import (bags, change_stats, compressible_dataset, damage_last_chunk, damaged_policy,
                           empty_first_episode, model_with_metadata, set_config, set_metadata, unwritable_folder)
from test_policy_data import TASK, write_dataset

from diffusion_reward.cli import main

UPSTREAM = Path(__file__).parent / "fixtures" / "upstream_parity" / "exp_local" / "video_models" / "vqdiffusion"


class _RunsCodeWhenUnpickled:
    """A checkpoint payload that creates a file when torch.load unpickles it without weights_only."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


BAD_MODELS = {  # name -> edit of the model file's metadata
    "n_head0": set_config("video", "n_head", 0), "n_layer_negative": set_config("video", "n_layer", -1),
    "n_layer_huge": set_config("video", "n_layer", 10**6), "n_embd_string": set_config("video", "n_embd", "64"),
    "diffusion_steps_huge": set_config("video", "diffusion_steps", 10**9),
    "frame_skip0": set_config("video", "frame_skip", 0), "unknown_field": set_config("video", "bogus", 1),
    "norm_groups0": set_config("codec", "norm_groups", 0), "channels_strings": set_config("codec", "channels", ["a"]),
    "channels_empty": set_config("codec", "channels", []), "num_codes0": set_config("codec", "num_codes", 0),
    "latent_dim_float": set_config("codec", "latent_dim", 16.5),
    "stats_no_mean": change_stats(lambda entry: entry.pop("mean")),
    "stats_std0": change_stats(lambda entry: entry.update(std=0.0)),
    "stats_mean_nan": change_stats(lambda entry: entry.update(mean=float("nan"))),
    "stats_mean_string": change_stats(lambda entry: entry.update(mean="x")),
    "stats_list": set_metadata("stats", "[1, 2]"), "config_list": set_metadata("config", "[1]"),
    "config_not_json": set_metadata("config", "{nope"), "provenance_list": set_metadata("provenance", "[1]"),
    "version_word": set_metadata("format_version", "one"),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from diffusion_reward.models import RewardModel
    from diffusion_reward.offline.train_policy import TrainPolicyConfig, train_policy

    root = tmp_path_factory.mktemp("world")
    w = SimpleNamespace(root=root, data=write_dataset(root / "expert.hdf5", episodes=2, steps=6),
                        model=root / "model.safetensors", frames=root / "frames.npy", marker=root / "code_ran")
    w.episodes = root / "expert.hdf5.episodes"
    model = RewardModel.from_preset("tiny", seed=0)
    model.set_stats(TASK, "entropy", 9, 1, mean=-400.0, std=20.0)
    model.save(w.model)
    np.save(w.frames, np.zeros((3, 64, 64, 3), np.uint8))
    w.ckpt, w.config = root / "best.pth", root / "config.yaml"
    w.ckpt.write_bytes(b"an upstream checkpoint")
    w.config.write_text("model: {}\n")
    w.policy = train_policy(TrainPolicyConfig(data=str(w.data), out=str(root / "policy"), algo="bc", obs="state",
                                              steps=2, batch_size=4, checkpoint_every=2, show_progress=False))
    w.outside = root / "outside.pt"
    shutil.copy(w.policy / "model.pt", w.outside)
    checkpoints = w.policy / "checkpoints"
    (checkpoints / "link.pt").symlink_to(w.outside)
    (checkpoints / "empty.pt").write_bytes(b"")
    torch.save({"policy": _RunsCodeWhenUnpickled(w.marker)}, checkpoints / "evil.pt")
    w.existing_model, w.existing_npy, w.existing_json = (root / n for n in ("old.safetensors", "old.npy", "old.json"))
    for path in (w.existing_model, w.existing_npy, w.existing_json):
        path.write_bytes(b"an earlier output")
    w.existing_dir = root / "old_dir"
    w.existing_dir.mkdir()
    (w.existing_dir / "keep.txt").write_text("an earlier output")
    _add_damaged_inputs(w)
    return w


def _add_damaged_inputs(w: SimpleNamespace) -> None:
    root = w.root
    for name, edit in BAD_MODELS.items():
        setattr(w, f"model_{name}", model_with_metadata(w.model, root / f"bad_{name}.safetensors", edit))
    w.empty_file, w.binary = root / "empty.bin", root / "binary.bin"
    w.empty_file.write_bytes(b"")
    w.binary.write_bytes(bytes(range(256)) * 4)
    w.list_yaml = root / "list.yaml"
    w.list_yaml.write_text("- a\n- b\n")
    for name, array in {"no_frames": np.zeros((0, 64, 64, 3), np.uint8), "float_frames": np.zeros((3, 64, 64, 3)),
                        "vector": np.zeros(3), "objects": np.array([{"a": 1}], dtype=object)}.items():
        setattr(w, name, root / f"{name}.npy")
        np.save(root / f"{name}.npy", array, allow_pickle=True)
    w.evil_pth = root / "evil.pth"
    torch.save({"ema": _RunsCodeWhenUnpickled(w.marker)}, w.evil_pth)
    w.evil_checkpoints = root / "evil.ckpt"  # a train-reward checkpoint folder whose latest checkpoint runs code
    w.evil_checkpoints.mkdir()
    torch.save({"phase": "codec", "step": 10, "codec": _RunsCodeWhenUnpickled(w.marker)},
               w.evil_checkpoints / "ckpt-codec-00000010.pt")
    w.upstream_ckpt, w.upstream_config = root / "upstream_best.pth", root / "upstream_config.yaml"
    shutil.copy(UPSTREAM / "tiny" / "checkpoint" / "best.pth", w.upstream_ckpt)
    shutil.copy(UPSTREAM / "tiny" / ".hydra" / "config.yaml", w.upstream_config)
    w.corrupt = compressible_dataset(root / "corrupt.hdf5", TASK)
    damage_last_chunk(w.corrupt)
    w.empty_episode = write_dataset(root / "empty_episode.hdf5", episodes=2, steps=6)
    empty_first_episode(w.empty_episode)
    w.bag, w.damaged_bag, w.truncated_mcap = bags(root)
    for name, file, content in (("policy_not_json", "policy.json", b"{not json"),
                                ("policy_list", "policy.json", b"[1, 2]"),
                                ("policy_no_keys", "policy.json", b'{"format": "diffusion_reward.policy"}'),
                                ("params_not_json", "params.json", b"{not json"),
                                ("params_empty", "params.json", b"{}"),
                                ("export_not_json", "export/policy.json", b"\x93NUMPY")):
        setattr(w, name, damaged_policy(w.policy, root / name, file, content))
    w.unwritable = unwritable_folder(root)


def _md5s(root: Path) -> dict[str, str]:
    """md5 of every file under root (a symlink: of its target path), keyed by relative path."""
    digests = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            content = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
            digests[str(path.relative_to(root))] = hashlib.md5(content).hexdigest()
    return digests


INTO = "would write into"
EXISTS = "already exists; pass --force"
SCORING_OPTION_CASES = (  # the ScoreConfig rules, shared by stats, score, relabel and report
    ("--skip-step", "-1", "--skip-step must be >= 0, got -1"),
    ("--num-samples", "0", "--num-samples must be >= 1, got 0"),
    ("--seed", "-1", "--seed must be in [0, 4294967295], got -1"))
CHUNK_AND_DEVICE_CASES = (  # score and relabel run the networks in chunks on a chosen device
    ("--chunk-size", "0", "--chunk-size must be >= 1, got 0"),
    ("--chunk-size", "1000000000", "--chunk-size 1000000000 (rows per network batch) would need about"),
    ("--device", "cuda", "no CUDA device"))
CASES = {
    # stats
    "stats --out the expert data": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{data}"],
                                    f"{INTO} --data"),
    "stats --out inside its episodes": (["stats", "--model", "{model}", "--data", "{data}",
                                         "--out", "{episodes}/m.safetensors"], f"{INTO} --data"),
    "stats --force onto the data": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{data}",
                                     "--force"], f"{INTO} --data"),
    "stats --out existing": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{existing_model}"],
                             EXISTS),
    # train-reward
    "train-reward --out the data": (["train-reward", "--data", "{data}", "--out", "{data}"], f"{INTO} --data"),
    "train-reward --force onto the data": (["train-reward", "--data", "{data}", "--out", "{data}", "--force"],
                                           f"{INTO} --data"),
    "train-reward --out existing": (["train-reward", "--data", "{data}", "--out", "{existing_model}"], EXISTS),
    "train-reward --checkpoint-dir in the episodes": (
        ["train-reward", "--data", "{data}", "--out", "{root}/new.safetensors", "--checkpoint-dir", "{episodes}"],
        f"--checkpoint-dir {{episodes}} {INTO} --data"),
    "train-reward --force onto --codec-from": (["train-reward", "--data", "{data}", "--codec-from", "{model}",
                                                "--out", "{model}", "--force"], f"{INTO} --codec-from"),
    # score
    "score --out the frames": (["score", "--model", "{model}", "--frames", "{frames}", "--out", "{frames}"],
                               f"{INTO} --frames"),
    "score --force onto the frames": (["score", "--model", "{model}", "--frames", "{frames}", "--out", "{frames}",
                                       "--force"], f"{INTO} --frames"),
    "score --out inside the episodes": (["score", "--model", "{model}", "--data", "{data}",
                                         "--out", "{episodes}/r.npz"], f"{INTO} --data"),
    "score --out existing": (["score", "--model", "{model}", "--frames", "{frames}", "--out", "{existing_npy}"],
                             EXISTS),
    # import-upstream
    "import-upstream --force onto its checkpoint": (
        ["import-upstream", "--video-checkpoint", "{ckpt}", "--video-config", "{config}", "--out", "{ckpt}",
         "--force"], f"{INTO} --video-checkpoint"),
    "import-upstream --force onto its config": (
        ["import-upstream", "--video-checkpoint", "{ckpt}", "--video-config", "{config}", "--out", "{config}",
         "--force"], f"{INTO} --video-config"),
    "import-upstream --out existing": (
        ["import-upstream", "--video-checkpoint", "{ckpt}", "--video-config", "{config}",
         "--out", "{existing_model}"], EXISTS),
    # report
    "report --out the episodes folder": (["report", "--model", "{model}", "--task", TASK, "--data", "{data}",
                                          "--out", "{episodes}"], f"{INTO} --data"),
    "report --out the model": (["report", "--model", "{model}", "--task", TASK, "--out", "{model}", "--force"],
                               f"{INTO} --model"),
    "report --out existing folder": (["report", "--model", "{model}", "--task", TASK, "--out", "{existing_dir}"],
                                     EXISTS),
    # relabel
    "relabel --out inside the source's episodes": (["relabel", "--model", "{model}", "--input", "{data}",
                                                    "--out", "{episodes}/x.h5"], f"{INTO} --input"),
    "relabel --out the source": (["relabel", "--model", "{model}", "--input", "{data}", "--out", "{data}"],
                                 f"{INTO} --input"),
    "relabel --out the model": (["relabel", "--model", "{model}", "--input", "{data}", "--out", "{model}"],
                                f"{INTO} --model"),
    "relabel --out existing": (["relabel", "--model", "{model}", "--input", "{data}", "--out", "{existing_model}"],
                               "already exists; pass --resume"),
    # train-policy
    "train-policy --out inside the episodes": (["train-policy", "--data", "{data}", "--out", "{episodes}/p"],
                                               f"{INTO} --data"),
    "train-policy --out the data": (["train-policy", "--data", "{data}", "--out", "{data}"], f"{INTO} --data"),
    # export
    "export --out the policy folder": (["export", "--policy", "{policy}", "--out", "{policy}"],
                                       f"{INTO} --policy"),
    "export --force onto the policy folder": (["export", "--policy", "{policy}", "--out", "{policy}", "--force"],
                                              f"{INTO} --policy"),
    "export --out inside the policy folder": (["export", "--policy", "{policy}", "--out", "{policy}/export",
                                               "--force"], f"{INTO} --policy"),
    "export --out existing folder": (["export", "--policy", "{policy}", "--out", "{existing_dir}"], EXISTS),
    "export --force onto an existing file": (["export", "--policy", "{policy}", "--out", "{existing_json}", "--force"],
                                             "is a file; export writes a folder"),
    "export --checkpoint ../outside": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                        "--checkpoint", "../outside.pt"], "outside the policy folder"),
    "export --checkpoint /absolute/outside": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                               "--checkpoint", "{outside}"], "outside the policy folder"),
    "export --checkpoint symlink to outside": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                                "--checkpoint", "checkpoints/link.pt"], "outside the policy folder"),
    "export --checkpoint empty file": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                        "--checkpoint", "checkpoints/empty.pt"], "not a readable weights-only"),
    "export --checkpoint malicious pickle": (["export", "--policy", "{policy}", "--out", "{root}/e",
                                              "--checkpoint", "checkpoints/evil.pt"], "not a readable weights-only"),
    # evaluate
    "evaluate --json into the policy": (["evaluate", "--policy", "{policy}", "--json", "{policy}/policy.json"],
                                        f"--json {{policy}}/policy.json {INTO} --policy"),
    "evaluate --video into the data's episodes": (["evaluate", "--policy", "{policy}", "--video",
                                                   "{episodes}/x.mp4", "--data", "{data}", "--ope"],
                                                  f"{INTO} --data"),
    "evaluate --json existing": (["evaluate", "--policy", "{policy}", "--json", "{existing_json}"], EXISTS),
    "evaluate --ope malicious checkpoint": (["evaluate", "--policy", "{policy}", "--data", "{data}", "--ope",
                                             "--checkpoint", "checkpoints/evil.pt"], "not a readable weights-only"),
    # --- argparse's own errors: one line, not a usage block
    "no command": ([], "the following arguments are required: COMMAND"),
    "unknown command": (["frobnicate"], "invalid choice: 'frobnicate'"),
    "collect without --out": (["collect", "--task", TASK], "the following arguments are required: --out"),
    "collect --episodes not a number": (["collect", "--task", TASK, "--out", "{root}/n.hdf5", "--episodes", "x"],
                                        "argument --episodes: invalid int value: 'x'"),
    "info without a path": (["info"], "the following arguments are required: path"),
    "info unknown flag": (["info", "{data}", "--bogus"], "unrecognized arguments: --bogus"),
    "score --frames and --data": (["score", "--frames", "{frames}", "--data", "{data}", "--out", "{root}/o.npy"],
                                  "not allowed with argument"),
    "stats --out and --in-place": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{root}/m.st",
                                    "--in-place"], "not allowed with argument"),
    "train-reward --seed not an integer": (["train-reward", "--data", "{data}", "--out", "{root}/m.st",
                                            "--seed", "1.5"], "invalid int value: '1.5'"),
    "relabel --dtype float8": (["relabel", "--input", "{data}", "--out", "{root}/o.hdf5", "--dtype", "float8"],
                               "argument --dtype: invalid choice: 'float8'"),
    "relabel --rate not a number": (["relabel", "--input", "{data}", "--out", "{root}/o.hdf5", "--rate", "fast"],
                                    "invalid float value: 'fast'"),
    "train-policy --algo sac": (["train-policy", "--data", "{data}", "--out", "{root}/p", "--algo", "sac"],
                                "argument --algo: invalid choice: 'sac'"),
    "evaluate --positions sometimes": (["evaluate", "--policy", "{policy}", "--positions", "sometimes"],
                                       "invalid choice: 'sometimes'"),
    "export without --out": (["export", "--policy", "{policy}"], "the following arguments are required: --out"),
    "import-upstream without checkpoint": (["import-upstream", "--out", "{root}/m.st"],
                                           "the following arguments are required: --video-checkpoint"),
    "report without --task": (["report", "--out", "{root}/r"], "the following arguments are required: --task"),
    "live without a node": (["live"], "the following arguments are required: NODE|up"),
    "live up without --config": (["live", "up"], "the following arguments are required: --config"),
    "live labeller --log-level loud": (["live", "labeller", "--log-level", "loud"], "invalid choice: 'loud'"),
    # --- numbers out of range, before anything is allocated or written (collect)
    **{f"collect {flag} {value}": (["collect", "--task", TASK, "--out", "{root}/n.hdf5", flag, value], expected)
       for flag, value, expected in (
           ("--episodes", "0", "--episodes must be >= 1, got 0"),
           ("--epsilon", "1.5", "--epsilon must be in [0.0, 1.0], got 1.5"),
           ("--epsilon", "nan", "--epsilon must be a finite number, got nan"),
           ("--seed", "-1", "--seed must be in [0, 4294967295], got -1"),
           ("--action-repeat", "0", "--action-repeat must be >= 1, got 0"),
           ("--action-repeat", "100000000", "physics steps per episode is more than"),
           ("--image-size", "0", "--image-size must be in [8, 960], got 0"),
           ("--image-size", "100000", "--image-size must be in [8, 960], got 100000"),
           ("--max-steps", "0", "--max-steps must be >= 1, got 0"),
           ("--max-steps", "1000000000000", "physics steps per episode is more than"),
           ("--steps-after-success", "-1", "--steps-after-success must be >= 0, got -1"))},
    # train-reward: every step count, batch, rate and seed; batches that would not fit in memory
    **{f"train-reward {flag} {value}": (["train-reward", "--data", "{data}", "--out", "{root}/m.st", flag, value],
                                        expected)
       for flag, value, expected in (
           ("--batch-size", "0", "--batch-size must be >= 1, got 0"),
           ("--batch-size", "100000", "--batch-size 100000 would need about"),
           ("--codec-batch-size", "-1", "--codec-batch-size must be >= 1, got -1"),
           ("--codec-batch-size", "100000", "--codec-batch-size 100000 would need about"),
           ("--lr", "nan", "--lr must be a finite number, got nan"),
           ("--lr", "-1", "--lr must be > 0.0, got -1.0"),
           ("--codec-lr", "inf", "--codec-lr must be a finite number, got inf"),
           ("--codec-steps", "-1", "--codec-steps must be >= 0, got -1"),
           ("--video-steps", "-5", "--video-steps must be >= 0, got -5"),
           ("--seed", "-1", "--seed must be in [0, 4294967295], got -1"),
           ("--val-fraction", "1.0", "--val-fraction must be in [0, 1)"),
           ("--frame-skip", "0", "--frame-skip must be >= 1, got 0"),
           ("--checkpoint-every", "0", "--checkpoint-every must be >= 1, got 0"),
           ("--disc-start", "-1", "--disc-start must be >= 0, got -1"),
           ("--codebook-restart-every", "-1", "--codebook-restart-every must be >= 0, got -1"),
           ("--preset", "huge", "argument --preset: invalid choice: 'huge'"),
           ("--device", "cuda", "no CUDA device"),
           ("--device", "tpu", "--device 'tpu' is not a device"))},
    # stats, score, relabel, report: the scoring options (one rule each, in ScoreConfig)
    **{f"stats {flag} {value}": (["stats", "--model", "{model}", "--data", "{data}", "--out", "{root}/m.st", flag,
                                  value], expected)
       for flag, value, expected in SCORING_OPTION_CASES},
    **{f"score {flag} {value}": (["score", "--model", "{model}", "--frames", "{frames}", "--raw", "--out",
                                  "{root}/o.npy", flag, value], expected)
       for flag, value, expected in (*SCORING_OPTION_CASES, *CHUNK_AND_DEVICE_CASES,
                                     ("--skip-step", "1000", "skip step must be in [0, 98], got 1000"),
                                     ("--device", "cuda:7", "no CUDA device"),
                                     ("--device", "tpu", "--device 'tpu' is not a device"))},
    **{f"relabel {flag} {value}": (["relabel", "--model", "{model}", "--input", "{bag}", "--out", "{root}/o.hdf5",
                                    "--task", TASK, flag, value], expected)
       for flag, value, expected in (
           ("--rate", "nan", "--rate must be a finite number, got nan"),
           ("--rate", "inf", "--rate must be a finite number, got inf"),
           ("--rate", "-5", "--rate must be > 0.0, got -5.0"),
           ("--tolerance", "-1", "--tolerance must be >= 0.0, got -1.0"),
           ("--gap", "0", "--gap must be > 0.0, got 0.0"),
           ("--gap", "nan", "--gap must be a finite number, got nan"),
           *SCORING_OPTION_CASES, *CHUNK_AND_DEVICE_CASES)},
    **{f"report {flag} {value}": (["report", "--model", "{model}", "--task", TASK, "--data", "{data}", "--out",
                                   "{root}/r", flag, value], expected)
       for flag, value, expected in (*SCORING_OPTION_CASES,
                                     ("--episodes", "0", "--episodes must be >= 1, got 0"),
                                     ("--diversity-samples", "1", "--diversity-samples must be >= 2, got 1"),
                                     ("--device", "cuda", "no CUDA device"))},
    # train-policy and evaluate: steps, batches (memory), frame stacks (memory), reward weights, seeds, devices
    **{f"train-policy {' '.join(extra)}": (["train-policy", "--data", "{data}", "--out", "{root}/p", *extra],
                                           expected)
       for extra, expected in (
           (("--steps", "0"), "--steps must be >= 1, got 0"),
           (("--steps", "15", "--checkpoint-every", "10"), "must be a multiple of --checkpoint-every"),
           (("--batch-size", "0"), "--batch-size must be >= 1, got 0"),
           (("--batch-size", "100000000", "--obs", "state"), "--batch-size 100000000 would need about"),
           (("--checkpoint-every", "0"), "--checkpoint-every must be >= 1, got 0"),
           (("--frame-stack", "0"), "--frame-stack must be >= 1, got 0"),
           (("--frame-stack", "100000"), "--frame-stack 100000 over 2 episodes would need about"),
           (("--alpha", "nan"), "alpha must be a finite number, got nan"),
           (("--alpha", "2"), "alpha must be in [0.0, 1.0], got 2.0"),
           (("--beta", "inf"), "beta must be a finite number, got inf"),
           (("--beta", "-1"), "beta must be >= 0.0, got -1.0"),
           (("--seed", "-1"), "--seed must be in [0, 4294967295], got -1"),
           (("--device", "cuda"), "no CUDA device"),
           (("--device", "tpu"), "--device 'tpu' is not a device"))},
    **{f"evaluate {' '.join(extra)}": (["evaluate", "--policy", "{policy}", *extra], expected)
       for extra, expected in (
           (("--episodes", "0"), "--episodes must be >= 1, got 0"),
           (("--seed", "-1"), "--seed must be in [0, 4294967295], got -1"),
           (("--max-steps", "0"), "--max-steps must be >= 1, got 0"),
           (("--data", "{data}", "--ope", "--fqe-steps", "0"), "--fqe-steps must be >= 1, got 0"),
           (("--data", "{data}", "--ope", "--seed", "-1"), "--seed must be in [0, 4294967295], got -1"))},
    "live labeller --domain-id 500": (["live", "labeller", "--domain-id", "500"], "DDS domain id must be between"),
    # --- damaged reward-model metadata (loading stops at the metadata, before anything is allocated)
    **{f"score with model {name}": (["score", "--model", f"{{model_{name}}}", "--frames", "{frames}", "--task", TASK,
                                     "--out", "{root}/o.npy"], expected)
       for name, expected in (
           ("n_head0", "has an invalid model config: video.n_head must be >= 1, got 0"),
           ("n_layer_negative", "video.n_layer must be >= 1, got -1"),
           ("n_layer_huge", "a reward model of this config (about"),
           ("n_embd_string", "video.n_embd must be an integer, got '64'"),
           ("diffusion_steps_huge", "would need about"),
           ("frame_skip0", "video.frame_skip must be >= 1, got 0"),
           ("unknown_field", "missing or unknown fields"),
           ("norm_groups0", "codec.norm_groups must be >= 1, got 0"),
           ("channels_strings", "codec.channels[0] must be an integer, got 'a'"),
           ("channels_empty", "codec.channels needs at least two entries"),
           ("num_codes0", "codec.num_codes must be >= 1, got 0"),
           ("latent_dim_float", "codec.latent_dim must be an integer, got 16.5"),
           ("stats_no_mean", "has damaged statistics"),
           ("stats_std0", "need a finite mean and a positive std"),
           ("stats_mean_nan", "need a finite mean and a positive std"),
           ("stats_mean_string", "need a finite mean and a positive std"),
           ("stats_list", "statistics are not"),
           ("config_list", "has an invalid model config"),
           ("config_not_json", "has damaged model metadata"),
           ("provenance_list", "provenance is not a mapping"),
           ("version_word", "has damaged model metadata"))},
    "relabel with a model of n_head 0": (["relabel", "--model", "{model_n_head0}", "--input", "{data}",
                                          "--out", "{root}/o.hdf5"], "video.n_head must be >= 1, got 0"),
    "stats with a model lacking stats keys": (["stats", "--model", "{model_stats_no_mean}", "--data", "{data}",
                                               "--out", "{root}/m.st"], "has damaged statistics"),
    "report with a model of norm_groups 0": (["report", "--model", "{model_norm_groups0}", "--task", TASK,
                                              "--data", "{data}", "--out", "{root}/r"], "codec.norm_groups"),
    "train-reward --codec-from norm_groups 0": (["train-reward", "--data", "{data}", "--out", "{root}/m.st",
                                                 "--codec-from", "{model_norm_groups0}"], "codec.norm_groups"),
    "score with a binary file as model": (["score", "--model", "{binary}", "--frames", "{frames}", "--raw",
                                           "--out", "{root}/o.npy"], "is not a safetensors model file"),
    # --- damaged frames files
    **{f"score --frames {name}": (["score", "--model", "{model}", "--frames", f"{{{name}}}", "--raw", "--out",
                                   "{root}/o.npy"], expected)
       for name, expected in (("empty_file", "is not a readable .npy array"), ("no_frames", "no frames to score"),
                              ("float_frames", "frames must be uint8 RGB"), ("vector", "frames must have shape"),
                              ("objects", "Python objects in dtype"),
                              ("binary", "is not a readable .npy array"))},
    # --- damaged HDF5 chunks and zero-step episodes
    "info --verify a damaged chunk": (["info", "--verify", "{corrupt}"], "demo_1: cannot read 'obs/image'"),
    "score one episode with a damaged chunk": (["score", "--model", "{model}", "--data", "{corrupt}", "--episode",
                                                "1", "--out", "{root}/o.npy"], "demo_1: cannot read 'obs/image'"),
    "score every episode, one damaged chunk": (["score", "--model", "{model}", "--data", "{corrupt}", "--out",
                                                "{root}/o.npz"], "demo_1: cannot read 'obs/image'"),
    "relabel a damaged chunk": (["relabel", "--model", "{model}", "--input", "{corrupt}", "--out",
                                 "{fresh}/labelled.hdf5"], "demo_1: cannot read 'obs/image'"),
    "stats over a damaged chunk": (["stats", "--model", "{model}", "--data", "{corrupt}", "--out", "{root}/m.st"],
                                   "demo_1: cannot read 'obs/image'"),
    "train-reward on a damaged chunk": (["train-reward", "--data", "{corrupt}", "--out", "{root}/m.st"],
                                        "demo_1: cannot read 'obs/image'"),
    "train-policy on a damaged chunk": (["train-policy", "--data", "{corrupt}", "--reward", "sparse", "--out",
                                         "{root}/p"], "demo_1: cannot read 'obs/image'"),
    "report on a damaged chunk": (["report", "--model", "{model}", "--task", TASK, "--data", "{corrupt}", "--out",
                                   "{root}/r"], "demo_1: cannot read 'obs/image'"),
    "info --verify a zero-step episode": (["info", "--verify", "{empty_episode}"], "episode demo_0 has no steps"),
    "score every episode, one with zero steps": (["score", "--model", "{model}", "--data", "{empty_episode}",
                                                  "--out", "{root}/o.npz"], "episode demo_0 has no steps"),
    "score a zero-step episode": (["score", "--model", "{model}", "--data", "{empty_episode}", "--episode", "0",
                                   "--out", "{root}/o.npy"], "episode demo_0 has no steps"),
    "relabel a zero-step episode": (["relabel", "--model", "{model}", "--input", "{empty_episode}", "--out",
                                     "{root}/o.hdf5"], "episode demo_0 has no steps"),
    "stats over a zero-step episode": (["stats", "--model", "{model}", "--data", "{empty_episode}", "--out",
                                        "{root}/m.st"], "episode demo_0 has no steps"),
    "train-reward on a zero-step episode": (["train-reward", "--data", "{empty_episode}", "--out", "{root}/m.st"],
                                            "episode demo_0 has no steps"),
    "train-policy on a zero-step episode": (["train-policy", "--data", "{empty_episode}", "--obs", "state", "--out",
                                             "{root}/p"], "episode demo_0 has no steps"),
    "report on a zero-step episode": (["report", "--model", "{model}", "--task", TASK, "--data", "{empty_episode}",
                                       "--out", "{root}/r"], "episode demo_0 has no steps"),
    "evaluate --ope on a zero-step episode": (["evaluate", "--policy", "{policy}", "--data", "{empty_episode}",
                                               "--ope"], "episode demo_0 has no steps"),
    # --- recordings: a damaged mcap chunk, a truncated file, a rate that would not fit in memory
    "relabel a bag with a damaged chunk": (["relabel", "--model", "{model}", "--input", "{damaged_bag}", "--task",
                                            TASK, "--out", "{root}/o.hdf5"], "is damaged: cannot read its messages"),
    "relabel a truncated mcap": (["relabel", "--model", "{model}", "--input", "{truncated_mcap}", "--task", TASK,
                                  "--out", "{root}/o.hdf5"], "cannot read MCAP file"),
    "relabel --rate 1e9": (["relabel", "--model", "{model}", "--input", "{bag}", "--task", TASK, "--rate", "1e9",
                            "--out", "{fresh}/labelled.hdf5"], "--rate 1e+09 Hz over"),
    # --- damaged policy folders
    **{f"{command} {name}": ([command, "--policy", f"{{{name}}}", *extra], expected)
       for command, extra in (("export", ("--out", "{root}/e")), ("evaluate", ("--data", "{data}", "--ope")))
       for name, expected in (("policy_not_json", "policy.json is damaged: not JSON"),
                              ("policy_list", "policy.json is damaged: not a JSON object"),
                              ("policy_no_keys", "policy.json is damaged: it lacks algo"),
                              ("params_not_json", "params.json is damaged: not JSON"),
                              ("params_empty", "params.json is damaged: not the d3rlpy parameters"))},
    "evaluate with a damaged export/policy.json": (["evaluate", "--policy", "{export_not_json}", "--episodes", "1"],
                                                   "export/policy.json is damaged: not JSON"),
    # --- upstream checkpoints: empty, binary, pickled code, not a checkpoint; configs that are not YAML
    **{f"import-upstream --video-checkpoint {name}": (["import-upstream", "--video-checkpoint", f"{{{name}}}",
                                                       "--video-config", "{upstream_config}", "--out", "{root}/m.st"],
                                                      expected)
       for name, expected in (("empty_file", "(damaged, empty, or it holds pickled objects other than tensors: "
                                             "EOFError); refusing to load it"),
                              ("binary", "refusing to load it"), ("evil_pth", "refusing to load it"),
                              ("vector", "refusing to load it"))},
    "import-upstream --codec-checkpoint malicious": (["import-upstream", "--video-checkpoint", "{upstream_ckpt}",
                                                      "--video-config", "{upstream_config}", "--codec-checkpoint",
                                                      "{evil_pth}", "--out", "{root}/m.st"], "refusing to load it"),
    # --- the other torch loaders: LPIPS weights and train-reward's checkpoints
    "report --lpips-weights malicious": (["report", "--model", "{model}", "--task", TASK, "--data", "{data}", "--out",
                                          "{root}/r", "--diversity", "--lpips-weights", "{evil_pth}"],
                                         "cannot read LPIPS weights {evil_pth} (damaged, empty, or it holds pickled "
                                         "objects other than tensors: UnpicklingError); refusing to load it"),
    "report --lpips-weights without --diversity": (["report", "--model", "{model}", "--task", TASK, "--data",
                                                    "{data}", "--out", "{root}/r", "--lpips-weights", "{evil_pth}"],
                                                   "--lpips-weights adds LPIPS to the --diversity table"),
    "train-reward --lpips-weights malicious": (["train-reward", "--data", "{data}", "--out", "{root}/m.st",
                                                "--lpips-weights", "{evil_pth}"],
                                               "cannot read LPIPS weights {evil_pth} (damaged"),
    "train-reward --resume from a malicious checkpoint": (["train-reward", "--data", "{data}", "--out", "{root}/m.st",
                                                           "--checkpoint-dir", "{evil_checkpoints}", "--resume"],
                                                          "refusing to load it"),
    "import-upstream --video-config binary": (["import-upstream", "--video-checkpoint", "{upstream_ckpt}",
                                               "--video-config", "{binary}", "--out", "{root}/m.st"],
                                              "is not a readable YAML file"),
    "import-upstream --video-config empty": (["import-upstream", "--video-checkpoint", "{upstream_ckpt}",
                                              "--video-config", "{empty_file}", "--out", "{root}/m.st"],
                                             "upstream config has no `model.params`"),
    "import-upstream --stats binary": (["import-upstream", "--video-checkpoint", "{upstream_ckpt}", "--video-config",
                                        "{upstream_config}", "--stats", "{binary}", "--reward-type", "entropy",
                                        "--out", "{root}/m.st"], "is not a readable YAML file"),
    # --- live: binary and malformed configuration files
    "live up --config binary": (["live", "up", "--config", "{binary}"], "is not valid YAML"),
    "live up --config a .npy": (["live", "up", "--config", "{frames}"], "is not valid YAML"),
    "live up --config a YAML list": (["live", "up", "--config", "{list_yaml}"], "needs a non-empty 'nodes' list"),
    "live labeller --params binary": (["live", "labeller", "--params", "{binary}"], "is not valid YAML"),
    "live labeller --dds-config binary": (["live", "labeller", "--dds-config", "{binary}"], "is not XML"),
    # --- outputs nobody can write here: a folder this user cannot write, a path through a file
    **{f"{argv[0]} --out unwritable": (argv, "cannot be written")
       for argv in (["score", "--model", "{model}", "--frames", "{frames}", "--raw", "--out", "{unwritable}/o.npy"],
                    ["stats", "--model", "{model}", "--data", "{data}", "--out", "{unwritable}/m.st"],
                    ["train-reward", "--data", "{data}", "--out", "{unwritable}/m.st"],
                    ["import-upstream", "--video-checkpoint", "{upstream_ckpt}", "--video-config",
                     "{upstream_config}", "--out", "{unwritable}/m.st"],
                    ["report", "--model", "{model}", "--task", TASK, "--data", "{data}", "--out", "{unwritable}/r"],
                    ["relabel", "--model", "{model}", "--input", "{data}", "--out", "{unwritable}/o.hdf5"],
                    ["train-policy", "--data", "{data}", "--obs", "state", "--out", "{unwritable}/p"],
                    ["export", "--policy", "{policy}", "--out", "{unwritable}/e"],
                    ["evaluate", "--policy", "{policy}", "--data", "{data}", "--ope", "--json", "{unwritable}/r.json"],
                    ["collect", "--task", TASK, "--episodes", "1", "--out", "{unwritable}/n.hdf5"],
                    ["demo", "--out", "{unwritable}/demo"])},
    **{f"{argv[0]} --out through a file": (argv, "is a file, not a folder")
       for argv in (["score", "--model", "{model}", "--frames", "{frames}", "--raw", "--out",
                     "{existing_json}/o.npy"],
                    ["relabel", "--model", "{model}", "--input", "{data}", "--out", "{existing_json}/o.hdf5"],
                    ["collect", "--task", TASK, "--episodes", "1", "--out", "{existing_json}/n.hdf5"],
                    ["demo", "--out", "{existing_json}/demo"])},
    "demo --policy-steps not a number": (["demo", "--out", "{root}/demo", "--policy-steps", "many"],
                                         "argument --policy-steps: invalid int value: 'many'"),
}
# cases that fail while working (damage found when its chunk is read): the progress bar drawn before the error
# is left out of the count of lines
MID_RUN = {"score every episode, one damaged chunk", "relabel a damaged chunk", "relabel --rate 1e9"}
PROGRESS_BAR = re.compile(r"\[\d\d:\d\d.*\]$")  # tqdm's "[00:01<00:02, 3.5frame/s]" tail


@pytest.mark.parametrize("case", CASES)
def test_hostile_command_line_fails_in_one_line_and_modifies_nothing(case, world, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # what once let a malicious checkpoint run code
    argv, expected = CASES[case]
    paths = {k: str(v) for k, v in vars(world).items()} | {"fresh": str(tmp_path)}
    before = _md5s(world.root)
    capsys.readouterr()
    code = main([a.format(**paths) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.strip().splitlines() if case not in MID_RUN or not PROGRESS_BAR.search(line)]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected.format(**paths) in lines[0], err
    assert "weights_only" not in err  # never torch's advice to unpickle anyway
    assert _md5s(world.root) == before  # nothing changed, nothing added (no malicious code ran)
    assert not world.marker.exists()


def test_force_replaces_an_earlier_output_but_not_an_input(world, tmp_path, capsys):
    out = tmp_path / "rewards.npy"
    out.write_bytes(b"an earlier output")
    argv = ["score", "--model", str(world.model), "--frames", str(world.frames), "--raw", "--out", str(out)]
    assert main(argv) == 2 and out.read_bytes() == b"an earlier output"
    assert main([*argv, "--force"]) == 0, capsys.readouterr().err
    assert np.load(out).shape == (3,)


def test_info_json_into_a_pipe_closed_early_exits_quietly(world):
    """`info --json | head -c 1`: the reader goes away before the output is written; no traceback, no
    'Exception ignored' line, and the exit status of a process that SIGPIPE stopped."""
    child = subprocess.Popen([sys.executable, "-m", "diffusion_reward", "info", "--json", str(world.data)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()  # before the child has imported anything: its first write meets a closed pipe
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141, err
    assert err == ""
