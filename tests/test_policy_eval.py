"""evaluate: success rate + Wilson interval in simulation through the exported policy; FQE on held-out data."""
import json
import math

import pytest

from diffusion_reward.cli import main
from diffusion_reward.errors import UserError
from diffusion_reward.offline.evaluate import UNSEEN_SEED_BASE, evaluation_seeds, wilson_interval
from diffusion_reward.offline.train_policy import TrainPolicyConfig, train_policy
from test_policy_data import write_dataset


def test_wilson_interval_known_values():
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert wilson_interval(10, 10) == pytest.approx((0.7225, 1.0), abs=1e-4)


def test_seen_and_unseen_seeds_are_disjoint_and_reproducible():
    seen = [100, 101, 102]
    assert set(evaluation_seeds("seen", 7, 0, seen)) == set(seen)
    unseen = evaluation_seeds("unseen", 20, 0, seen)
    assert len(set(unseen)) == 20 and all(s >= UNSEEN_SEED_BASE for s in unseen)
    assert unseen == evaluation_seeds("unseen", 20, 0, seen) != evaluation_seeds("unseen", 20, 1, seen)
    with pytest.raises(UserError, match="no reset seeds"):
        evaluation_seeds("seen", 3, 0, [])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    data = write_dataset(root / "labelled.hdf5", episodes=2, steps=8)
    heldout = write_dataset(root / "heldout.hdf5", episodes=2, steps=8, seed=1)
    policy = train_policy(TrainPolicyConfig(data=str(data), out=str(root / "policy"), algo="iql", obs="both",
                                            frame_stack=2, steps=4, batch_size=4, checkpoint_every=4,
                                            show_progress=False))
    return root, policy, heldout


def test_sim_evaluation_with_video(trained, capsys):
    import imageio.v2 as imageio

    root, policy, _ = trained
    video, result = root / "eval.mp4", root / "new" / "eval.json"
    assert main(["evaluate", "--policy", str(policy), "--episodes", "2", "--max-steps", "3", "--positions",
                 "seen", "--video", str(video), "--json", str(result)]) == 0
    assert "success" in capsys.readouterr().out
    summary = json.loads(result.read_text())
    assert summary["task"] == "button-press-topdown-v3" and summary["episodes"] == 2
    assert set(summary["reset_seeds"]) <= {100, 101} and summary["episode_steps"] == [3, 3]
    lo, hi = summary["ci95"]
    assert lo <= summary["success_rate"] <= hi
    with imageio.get_reader(str(video)) as reader:
        frames = [f for f in reader]
    assert len(frames) == 6 and frames[0].shape == (256, 256, 3)


def test_off_policy_evaluation(trained, capsys):
    root, policy, heldout = trained
    out = root / "ope.json"
    assert main(["evaluate", "--policy", str(policy), "--data", str(heldout), "--ope", "--fqe-steps", "4",
                 "--json", str(out)]) == 0
    assert "FQE initial-state value" in capsys.readouterr().out
    result = json.loads(out.read_text())
    assert result["episodes"] == 2 and result["transitions"] == 15
    assert all(math.isfinite(result[k]) for k in
               ("fqe_initial_value", "critic_initial_value", "action_mse", "action_l1", "logged_initial_return"))
    assert 0.0 < result["action_l1"] <= 2.0 and result["action_mse"] <= 4.0
    assert main(["evaluate", "--policy", str(policy), "--ope"]) == 2
