"""Exported TorchScript / ONNX policy == the d3rlpy policy on dataset observations; loads with torch only."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from diffusion_reward.data import Dataset
from diffusion_reward.offline.policy_folder import load_exported
from diffusion_reward.offline.mdp import MDPSpec, episode_observations, frame_windows
from diffusion_reward.offline.train_policy import TrainPolicyConfig, load_policy, train_policy
from test_policy_data import write_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("export") / "labelled.hdf5", episodes=2, steps=8)


@pytest.mark.parametrize("obs,algo", [("state", "bc"), ("image", "iql"), ("both", "td3plusbc")])
def test_exported_matches_d3rlpy(tmp_path, data, obs, algo):
    out = train_policy(TrainPolicyConfig(data=str(data), out=str(tmp_path / "policy"), algo=algo, obs=obs,
                                         frame_stack=2, steps=4, batch_size=4, checkpoint_every=2,
                                         show_progress=False, onnx=True))
    algo_d3, meta = load_policy(out)
    policy, exported = load_exported(out)
    assert exported["obs"] == obs and exported["frame_stack"] == 2 and exported["action_dim"] == 4
    assert exported["action_space"] == "ee_delta_xyz_gripper" and exported["task"] == "button-press-topdown-v3"
    with Dataset(data) as ds, ds[1] as ep:
        image = frame_windows(ep.obs["image"][()], 2)
        state = ep.obs["state"][()]
        expected = algo_d3.predict(episode_observations(ep, MDPSpec(obs=obs, frame_stack=2), "image"))
    got = policy(torch.from_numpy(image), torch.from_numpy(state)).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.abs(got).max() <= 1.0

    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "export" / "policy.onnx"))
    feed = {"image": image, "state": state}
    onnx_actions = session.run(None, {i.name: feed[i.name] for i in session.get_inputs()})[0]
    np.testing.assert_allclose(onnx_actions, expected, atol=1e-5)


def test_export_cli_checkpoint_and_torch_only_loading(tmp_path, data):
    out = train_policy(TrainPolicyConfig(data=str(data), out=str(tmp_path / "policy"), algo="bc", obs="image",
                                         steps=4, batch_size=4, checkpoint_every=2, show_progress=False))
    meta = json.loads((out / "policy.json").read_text())
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["step_2.pt", "step_4.pt"]
    assert [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [2, 4]
    assert meta["train_config"]["steps"] == 4 and meta["dataset"]["transitions"] == 15
    # the step-2 checkpoint is a different policy from the final weights
    from diffusion_reward.cli import main

    assert main(["export", "--policy", str(out), "--out", str(tmp_path / "early"),
                 "--checkpoint", "checkpoints/step_2.pt"]) == 0
    assert main(["export", "--policy", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    script = f"""
import sys
sys.modules["d3rlpy"] = None  # any d3rlpy import now fails
import torch
x = torch.randint(0, 256, (3, 1, 64, 64, 3), dtype=torch.uint8)
s = torch.zeros(3, 39)
final = torch.jit.load({str(out / "export" / "policy.ts")!r})(x, s)
early = torch.jit.load({str(tmp_path / "early" / "policy.ts")!r})(x, s)
assert final.shape == (3, 4) and final.dtype == torch.float32
assert not torch.allclose(final, early)
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr
