"""train-policy: CLI, reproducibility, refusals that leave existing files alone."""
import numpy as np
import pytest
import torch

from diffusion_reward.cli import main
from diffusion_reward.offline.policy_folder import load_exported
from test_policy_data import write_dataset


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("train") / "labelled.hdf5", episodes=2, steps=8)


def _train(data, out, *extra):
    return main(["train-policy", "--data", str(data), "--out", str(out), "--algo", "bc", "--obs", "state",
                 "--steps", "4", "--batch-size", "4", "--checkpoint-every", "2", *extra])


def _actions(out):
    policy, _ = load_exported(out)
    g = torch.Generator().manual_seed(0)
    return policy(torch.zeros(5, 1, 64, 64, 3, dtype=torch.uint8), torch.randn(5, 39, generator=g)).numpy()


def test_same_seed_same_policy_other_seed_differs(tmp_path, data):
    assert _train(data, tmp_path / "a", "--seed", "3") == 0
    assert _train(data, tmp_path / "b", "--seed", "3") == 0
    assert _train(data, tmp_path / "c", "--seed", "4") == 0
    np.testing.assert_array_equal(_actions(tmp_path / "a"), _actions(tmp_path / "b"))
    assert not np.allclose(_actions(tmp_path / "a"), _actions(tmp_path / "c"))
    assert not (tmp_path / "a.partial").exists()


def test_refusals_exit_2_and_touch_nothing(tmp_path, data, capsys):
    unlabelled = write_dataset(tmp_path / "raw.hdf5", episodes=1, labels=())
    assert _train(unlabelled, tmp_path / "p", "--reward", "diffusion") == 2
    assert "labels present: none" in capsys.readouterr().err
    assert not (tmp_path / "p").exists() and not (tmp_path / "p.partial").exists()

    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("mine")
    assert _train(data, existing) == 2
    assert (existing / "keep.txt").read_text() == "mine"
    assert _train(data, tmp_path / "q", "--steps", "5") == 2  # not a multiple of --checkpoint-every
    assert _train(data, tmp_path / "q", "--alpha", "2") == 2
    assert main(["train-policy", "--data", str(tmp_path / "nope.hdf5"), "--out", str(tmp_path / "q")]) == 2
    assert not (tmp_path / "q").exists()
