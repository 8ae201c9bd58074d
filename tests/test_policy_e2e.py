"""collect -> stats -> relabel -> train-policy -> export -> evaluate, through the real CLI on a tiny run."""
import json

import numpy as np

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset
from diffusion_reward.models import RewardModel

TASK = "button-press-topdown-v3"



def test_collect_relabel_train_evaluate(tmp_path):
    data, labelled = tmp_path / "teleop.hdf5", tmp_path / "labelled.hdf5"
    model = RewardModel.from_preset("tiny", seed=0).save(tmp_path / "tiny.safetensors")  # random weights
    common = ["--task", TASK, "--max-steps", "40", "--stop-on-success", "--out", str(data)]
    assert main(["collect", "--episodes", "1", "--epsilon", "0", "--seed", "1", *common]) == 0
    assert main(["collect", "--episodes", "1", "--epsilon", "1", "--seed", "2", *common]) == 0
    assert main(["stats", "--model", str(model), "--data", str(data), "--task", TASK, "--in-place"]) == 0
    assert main(["relabel", "--model", str(model), "--input", str(data), "--out", str(labelled)]) == 0

    policy = tmp_path / "policy"
    assert main(["train-policy", "--data", str(labelled), "--algo", "iql", "--obs", "state", "--steps", "200",
                 "--batch-size", "32", "--checkpoint-every", "100", "--out", str(policy)]) == 0
    meta = json.loads((policy / "policy.json").read_text())
    with Dataset(data) as ds:
        episodes = [(ep.num_samples, ep.success, ep.attrs["reset_seed"]) for ep in ds]
    assert episodes[0][1] and not episodes[1][1]  # the expert succeeds, the random policy does not
    assert meta["dataset"]["terminal_episodes"] == 1 and meta["dataset"]["timeout_episodes"] == 1
    assert meta["dataset"]["transitions"] == sum(n for n, _, _ in episodes) - 1
    assert meta["dataset"]["label"] == "entropy" and meta["dataset"]["label_attrs"]["reward_type"] == "entropy"
    assert meta["dataset"]["reset_seeds"] == sorted(s for _, _, s in episodes)

    result = tmp_path / "eval.json"
    assert main(["evaluate", "--policy", str(policy), "--episodes", "2", "--positions", "seen", "--max-steps", "5",
                 "--json", str(result)]) == 0
    summary = json.loads(result.read_text())
    assert summary["episodes"] == 2 and set(summary["reset_seeds"]) <= {s for _, _, s in episodes}
    assert np.isclose(summary["success_rate"], np.mean(summary["episode_success"]))
