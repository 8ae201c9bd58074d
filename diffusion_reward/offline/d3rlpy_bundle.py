"""A policy bundle that plain d3rlpy 2.8 loads with its own documented calls: no `.d3` pickle, no diffusion_reward.

`diffusion-reward export --policy P --out B --d3rlpy` writes B/:

    params.json   d3rlpy's own config with shapes (what d3rlpy's logger writes as params.json)
    model.pt      d3rlpy's checkpoint of the networks (torch state dicts only: loads with weights_only=True)
    policy.json   what the observation and the action are (ours; d3rlpy does not read it)
    README.md     the lines below, for this bundle
    drq_pixel.py  only for obs=both policies: the image + state encoder, torch + d3rlpy only (see below)

Load it with d3rlpy alone, by the calls d3rlpy documents for a params.json + model.pt pair (`from_json` is
`LearnableConfigWithShape.deserialize_from_file(params.json).create(device)`, and builds the algorithm the file
names, whichever class it is called on; README.md in the bundle names the class: IQL, CQL, TD3PlusBC or BC):

    import d3rlpy
    algo = d3rlpy.algos.IQL.from_json("B/params.json", device="cpu:0")
    algo.load_model("B/model.pt")
    action = algo.predict(observation)          # float32 [N, action_dim] in [-1, 1]

Observations are what the policy trained on (d3rlpy's scalers in params.json do the rest): `state` policies
take the state float32 [N, D]; `image` policies uint8 [N, 3K, H, W], K frames stacked on the channel axis,
oldest first (RGB of frame t-K+1 .. t); `both` policies the list [image, state].

A `state` policy trains on d3rlpy's own vector encoder, so its train-policy folder P is such a pair already
(`from_json("P/params.json")` + `load_model("P/model.pt")`); the bundle is the same files plus the notes.

Image encoders. Training uses our DrQ encoder (`offline/encoders.py`, d3rlpy type "drq_pixel"), which d3rlpy
does not know. At inference it is exactly d3rlpy's Nature-DQN `PixelEncoderFactory` (the random shift runs in
training only), so an `image` policy's bundle names d3rlpy's standard "pixel" encoder (feature size 256) and its
weights are renamed to that encoder's layers: nothing else is needed, and the actions equal ours. Fine-tuning it
in d3rlpy trains without the shift augmentation. No standard d3rlpy encoder takes an (image, state) tuple, so an
`obs=both` bundle keeps "drq_pixel" and ships `drq_pixel.py` (a copy of our encoder module; it imports only
torch and d3rlpy); register it before `from_json`:

    import sys; sys.path.insert(0, "B"); import drq_pixel   # registers the "drq_pixel" encoder with d3rlpy

Checked by `tests/test_d3rlpy_bundle.py` in a Python process that cannot import diffusion_reward.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from diffusion_reward.errors import UserError

from .export import _atomic
from .policy_folder import PolicySpec, read_json_object

DRQ_TYPE = "drq_pixel"
# DrQ encoder layers -> d3rlpy PixelEncoder(WithAction) layers (the same Conv / Linear stack, other names)
RENAMES = ((re.compile(r"(^|\.)body\.convs\.(\d+)\."), r"\1_cnn_layers.\2."),
           (re.compile(r"(^|\.)body\.head\.0\."), r"\1_last_layers.0."))
D3RLPY_CLASSES = {"iql": "IQL", "cql": "CQL", "td3plusbc": "TD3PlusBC", "bc": "BC"}


def standard_encoder(params: dict) -> dict:
    """d3rlpy's PixelEncoderFactory with the DrQ factory's layers (what the DrQ encoder is in eval mode)."""
    return {"type": "pixel", "params": {
        "filters": params["filters"], "feature_size": params["feature_size"], "activation": "relu",
        "use_batch_norm": False, "dropout_rate": None, "exclude_last_activation": False, "last_activation": None}}


def _replace_encoders(value):
    """The d3rlpy config with every DrQ encoder factory replaced by the standard pixel one."""
    if isinstance(value, dict):
        if value.get("type") == DRQ_TYPE and isinstance(value.get("params"), dict):
            return standard_encoder(value["params"])
        return {k: _replace_encoders(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_encoders(v) for v in value]
    return value


def _rename(key: str) -> str:
    for pattern, replacement in RENAMES:
        key = pattern.sub(replacement, key)
    return key


def export_d3rlpy(policy_dir: str | Path, out_dir: str | Path, checkpoint: str | None = None) -> Path:
    """Write the bundle of the policy folder's final weights (or `checkpoint`, inside it) into `out_dir`."""
    import d3rlpy
    from d3rlpy.base import LearnableConfigWithShape

    from .train_policy import d3rlpy_device, load_policy

    policy_dir, out_dir = Path(policy_dir), Path(out_dir)
    algo, meta = load_policy(policy_dir, device="cpu", checkpoint=checkpoint)  # checks params and weights
    params = read_json_object(policy_dir / meta["params"])
    state = torch.load(policy_dir / (checkpoint or meta["model"]), map_location="cpu", weights_only=True)
    standard = meta["obs"] == "image"
    if standard:
        params = _replace_encoders(params)
        state = {name: {_rename(k): v for k, v in module.items()} if name not in _optimizers(algo) else module
                 for name, module in state.items()}
    # the bundle's own networks must give our actions: built from the bundle's config by d3rlpy, weights loaded
    # by d3rlpy's Checkpointer (strict state dicts)
    bundle = LearnableConfigWithShape.deserialize_from_dict(params).create(d3rlpy_device("cpu"))
    modules = bundle.impl.modules.create_checkpointer(bundle.impl.device).modules
    for name, module in modules.items():
        module.load_state_dict(state[name])
    observation = _example_observation(meta, algo.impl.observation_shape)
    ours, theirs = algo.predict(observation), bundle.predict(observation)
    if not np.allclose(ours, theirs, atol=1e-6):
        raise UserError(f"the d3rlpy bundle of {policy_dir} does not reproduce the policy's actions (max difference "
                        f"{np.abs(ours - theirs).max():.3g}); this d3rlpy {d3rlpy.__version__} differs from the one "
                        "the bundle was made for (2.8)")

    out_dir.mkdir(parents=True, exist_ok=True)
    _atomic(out_dir / "params.json", lambda p: p.write_text(json.dumps(params, indent=2)))
    _atomic(out_dir / "model.pt", lambda p: bundle.save_model(str(p)))
    files = {"params": "params.json", "model": "model.pt"}
    if meta["obs"] == "both":
        source = Path(__file__).with_name("encoders.py")
        _atomic(out_dir / "drq_pixel.py", lambda p: shutil.copyfile(source, p))
        files["encoder"] = "drq_pixel.py"
    elif (out_dir / "drq_pixel.py").exists():  # left by an earlier bundle of a `both` policy (--force)
        os.remove(out_dir / "drq_pixel.py")
    info = PolicySpec.from_meta(meta, policy_dir / "policy.json").to_dict()
    info.update({"format": "d3rlpy", "d3rlpy_version": d3rlpy.__version__, "files": files,
                 "encoder": "d3rlpy pixel" if standard else ("drq_pixel (drq_pixel.py)" if meta["obs"] == "both"
                                                             else "d3rlpy vector"),
                 "weights": str((policy_dir / (checkpoint or meta["model"])).resolve()),
                 "observation": OBSERVATION[meta["obs"]], "load": _load_call(meta)})
    _atomic(out_dir / "policy.json", lambda p: p.write_text(json.dumps(info, indent=2)))
    _atomic(out_dir / "README.md", lambda p: p.write_text(_readme(meta)))
    return out_dir


OBSERVATION = {
    "state": "float32 [N, state_dim]: the state as recorded (params.json's scaler standardises it)",
    "image": "uint8 [N, 3K, H, W]: K = frame_stack RGB frames stacked on the channel axis, oldest first",
    "both": "[uint8 [N, 3K, H, W] frames as for image, float32 [N, state_dim] state]",
}


def _optimizers(algo) -> set[str]:
    modules = algo.impl.modules.create_checkpointer(algo.impl.device).modules
    return {name for name, module in modules.items() if not isinstance(module, torch.nn.Module)}


def _example_observation(meta: dict, shape):
    """Two random observations of the policy's shape (uint8 images, float32 state) for the action check."""
    rng = np.random.default_rng(0)

    def one(s):
        s = tuple(int(v) for v in s)
        return (rng.integers(0, 256, (2, *s), dtype=np.uint8) if len(s) == 3
                else rng.normal(size=(2, *s)).astype(np.float32))

    return [one(s) for s in shape] if meta["obs"] == "both" else one(shape)


def _load_call(meta: dict) -> str:
    return (f'algo = d3rlpy.algos.{D3RLPY_CLASSES[meta["algo"]]}.from_json("params.json", device="cpu:0"); '
            'algo.load_model("model.pt"); action = algo.predict(observation)')


def _readme(meta: dict) -> str:
    register = ("import sys; sys.path.insert(0, BUNDLE); import drq_pixel   # registers the image + state encoder\n"
                if meta["obs"] == "both" else "")
    return f"""# d3rlpy policy bundle ({meta['algo']}, obs={meta['obs']}, frame_stack={meta['frame_stack']})

Written by `diffusion-reward export --d3rlpy`; loads with d3rlpy 2.8 alone (no `.d3` pickle, no diffusion_reward):

```python
import d3rlpy
BUNDLE = "path/to/this/folder"
{register}algo = d3rlpy.algos.{D3RLPY_CLASSES[meta['algo']]}.from_json(f"{{BUNDLE}}/params.json", device="cpu:0")
algo.load_model(f"{{BUNDLE}}/model.pt")
action = algo.predict(observation)   # float32 [N, {meta['action_dim']}] in [-1, 1]: {meta.get('action_space')}
```

observation: {OBSERVATION[meta['obs']]}; state_dim {meta.get('state_dim')}, image_size {meta.get('image_size')}.
Task {meta.get('task')}; see policy.json.
"""
