"""`export --d3rlpy`: a params.json + model.pt bundle that plain d3rlpy 2.8 loads with its own calls (no `.d3`
pickle), in a process that cannot import diffusion_reward, and that acts exactly as our policy does."""
import json
import subprocess
import sys

import numpy as np
import pytest

from diffusion_reward.cli import main
from diffusion_reward.data import Dataset
from diffusion_reward.offline.mdp import MDPSpec, episode_observations
from diffusion_reward.offline.train_policy import TrainPolicyConfig, load_policy, train_policy
from test_policy_data import write_dataset

# d3rlpy and only d3rlpy: any import of diffusion_reward (the editable install's finder included) fails
PLAIN_D3RLPY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "diffusion_reward":
            raise ImportError("diffusion_reward must not be needed to load the bundle")
sys.meta_path.insert(0, Block())
bundle, observations, out, algo_class = sys.argv[1:5]
import numpy as np
import d3rlpy
if len(sys.argv) > 5:  # an image + state policy: its encoder ships in the bundle
    sys.path.insert(0, bundle)
    import drq_pixel
algo = getattr(d3rlpy.algos, algo_class).from_json(f"{bundle}/params.json", device="cpu:0")
algo.load_model(f"{bundle}/model.pt")
data = np.load(observations)
obs = [data["image"], data["state"]] if "image" in data and "state" in data else data[data.files[0]]
np.save(out, algo.predict(obs))
loaded = sorted(m for m in sys.modules if m.startswith("diffusion_reward"))
assert not loaded, loaded
print("ok", type(algo).__name__)
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("bundle") / "labelled.hdf5", episodes=2, steps=8)


def _plain_d3rlpy(tmp_path, bundle, obs, algo_class, register=False):
    """Actions of the bundle on `obs`, computed by plain d3rlpy in a fresh process."""
    observations = tmp_path / "obs.npz"
    np.savez(observations, **({"image": obs[0], "state": obs[1]} if isinstance(obs, list) else {"x": obs}))
    out = tmp_path / "actions.npy"
    args = [sys.executable, "-c", PLAIN_D3RLPY, str(bundle), str(observations), str(out), algo_class]
    proc = subprocess.run(args + (["register"] if register else []), capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().splitlines()[-1] == f"ok {algo_class}", proc.stderr[-3000:]
    return np.load(out)


@pytest.mark.parametrize("obs,algo,algo_class", [  # one in the default tier, the other layouts in the slow tier
    ("state", "bc", "BC"), pytest.param("image", "iql", "IQL", marks=pytest.mark.slow),
    pytest.param("both", "td3plusbc", "TD3PlusBC", marks=pytest.mark.slow)])
def test_plain_d3rlpy_loads_the_bundle_and_acts_as_our_policy(tmp_path, capsys, data, obs, algo, algo_class):
    policy = train_policy(TrainPolicyConfig(data=str(data), out=str(tmp_path / "policy"), algo=algo, obs=obs,
                                            frame_stack=2, steps=4, batch_size=4, checkpoint_every=2,
                                            show_progress=False))
    bundle = tmp_path / "bundle"
    assert main(["export", "--policy", str(policy), "--out", str(bundle), "--d3rlpy"]) == 0
    assert "d3rlpy bundle" in capsys.readouterr().out
    files = sorted(p.name for p in bundle.iterdir())
    assert files == sorted(["params.json", "model.pt", "policy.json", "README.md"]
                           + (["drq_pixel.py"] if obs == "both" else []))
    params = (bundle / "params.json").read_text()
    assert ("drq_pixel" in params) == (obs == "both")  # image policies name d3rlpy's own pixel encoder
    info = json.loads((bundle / "policy.json").read_text())
    assert info["format"] == "d3rlpy" and info["obs"] == obs and info["frame_stack"] == 2
    assert f"d3rlpy.algos.{algo_class}.from_json" in info["load"]
    assert f"d3rlpy.algos.{algo_class}.from_json" in (bundle / "README.md").read_text()

    ours, _ = load_policy(policy)
    with Dataset(data) as ds, ds[1] as ep:
        observations = episode_observations(ep, MDPSpec(obs=obs, frame_stack=2), "image")
    expected = ours.predict(observations)
    got = _plain_d3rlpy(tmp_path, bundle, observations, algo_class, register=obs == "both")
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
    assert got.shape == (8, 4) and np.abs(got).max() <= 1.0
    if obs == "state":  # a state policy's own folder is such a pair too: params.json + model.pt
        np.testing.assert_allclose(_plain_d3rlpy(tmp_path, policy, observations, algo_class), expected, atol=1e-6)


def test_bad_d3rlpy_exports_are_one_error_line(tmp_path, capsys, data):
    policy = train_policy(TrainPolicyConfig(data=str(data), out=str(tmp_path / "policy"), algo="bc", obs="image",
                                            steps=2, batch_size=4, checkpoint_every=2, show_progress=False))
    (tmp_path / "not_a_policy").mkdir()
    capsys.readouterr()
    for args, message in [(["--policy", str(policy), "--onnx"], "--onnx is written with the TorchScript export"),
                          (["--policy", str(tmp_path / "not_a_policy")], "is not a policy folder"),
                          (["--policy", str(policy), "--checkpoint", "../x.pt"], "outside the policy folder")]:
        assert main(["export", *args, "--out", str(tmp_path / "bundle"), "--d3rlpy"]) == 2
        err = capsys.readouterr().err
        assert err.count("error:") == 1 and message in err, err
        assert not (tmp_path / "bundle").exists()
