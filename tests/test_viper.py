"""VIPER (VideoGPT) as a reward model: parity with the authors' VIPER code on the fixtures in
tests/fixtures/upstream_parity_viper (a tiny random-weight VideoGPT in their on-disk format + the numbers their
unmodified code produced), the paper-size preset key for key, import errors, batch = chunked = streaming, and a
tiny VideoGPT trained here that ranks expert episodes above random ones. Everything about the fixture is read from
its folder and manifest."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from diffusion_reward.cli import main
from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel, get_preset
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.upstream import import_upstream_videogpt
from diffusion_reward.upstream.viper import add_viper_stats

FIXTURES = Path(os.environ.get("DIFFUSION_REWARD_VIPER_FIXTURES",
                               Path(__file__).resolve().parent / "fixtures" / "upstream_parity_viper"))
RUN_FILES = sorted(FIXTURES.glob("reward_configs/*.yaml"))


def _one(pattern: str) -> Path:
    found = sorted(FIXTURES.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {FIXTURES}, found {found}"
    return found[0]


def ref(name: str) -> np.ndarray:
    return np.load(FIXTURES / "reference" / f"{name}.npy")


@pytest.fixture(scope="module")
def paths():
    return {"ckpt": _one("exp_local/video_models/videogpt/*/results/checkpoints/videogpt.pt"),
            "config": _one("exp_local/video_models/videogpt/*/.hydra/config.yaml")}


@pytest.fixture(scope="module")
def runs():
    return [yaml.safe_load(p.read_text()) for p in RUN_FILES]


@pytest.fixture(scope="module")
def model(paths, runs):
    m = import_upstream_videogpt(paths["ckpt"], paths["config"])
    for run in runs:
        add_viper_stats(m, FIXTURES / run["stat_path"].lstrip("/"), run["task_name"], run["reward_type"])
    return m


@pytest.fixture(scope="module")
def video():
    return np.load(FIXTURES / "inputs" / "video_uint8_THWC.npy")


def test_codec_tokens_and_the_vectors_the_gpt_sees_match(model, video):
    tokens = model.tokenize(video)
    np.testing.assert_array_equal(tokens.numpy(), ref("vqgan_tokens"))
    with torch.no_grad():
        vectors = model.codec.codebook.embedding(tokens[0]).numpy()
    np.testing.assert_allclose(vectors, ref("vqgan_frame0_embs"), atol=1e-5)


@pytest.mark.parametrize("run_file", RUN_FILES, ids=[p.stem for p in RUN_FILES])
def test_rows_logits_and_rewards_match_upstream(model, video, run_file):
    run = yaml.safe_load(run_file.read_text())
    mode = run["reward_type"]
    scorer = RewardScorer(model, ScoreConfig(reward_type=mode, task=run["task_name"]))
    res = scorer.score_episode(video)
    tokens = model.tokenize(video)
    cond, target = scorer.condition_rows(tokens, np.arange(len(video)))
    window = cond if target is None else torch.cat([cond, target], 1)
    np.testing.assert_array_equal(window.numpy(), ref(f"{mode}_batch_indices"))
    with torch.no_grad():
        logits = model.video.logits(window[5:6])[0]
    np.testing.assert_allclose(logits.numpy(), ref(f"{mode}_row5_logits"), atol=1e-4)
    np.testing.assert_allclose(torch.log_softmax(logits, -1).numpy(), ref(f"{mode}_row5_log_probs"), atol=1e-4)
    if run["compute_joint"]:  # the sum over all 192 positions, not a reward this project scores: from the logits
        with torch.no_grad():
            log_p = torch.log_softmax(model.video.logits(window), -1)
        joint = log_p.gather(-1, window.unsqueeze(-1)).squeeze(-1).sum(1)
        np.testing.assert_allclose(joint.numpy(), ref("likelihood_joint_raw").reshape(-1), atol=2e-3)
        return
    np.testing.assert_allclose(res.raw, ref(f"{mode}_raw").reshape(-1), atol=1e-3)
    np.testing.assert_allclose(res.reward, ref(f"{mode}_standardized").reshape(-1), atol=1e-4)
    np.testing.assert_allclose((1 - run["expl_scale"]) * res.reward, ref(f"{mode}_calc_reward").reshape(-1),
                               atol=1e-4)


def test_batch_chunked_and_streaming_give_the_same_rewards(model, video):
    for mode in ("viper", "entropy"):
        whole = RewardScorer(model, ScoreConfig(reward_type=mode, standardize=False)).score_episode(video).raw
        chunked = RewardScorer(model, ScoreConfig(reward_type=mode, standardize=False, chunk_size=5))
        pieces = chunked.score_chunks([video[:3], video[3:4], video[4:]]).raw
        stream = chunked.stream()
        pushed = [stream.push(f) for f in video] + stream.finish()
        np.testing.assert_allclose(pieces, whole, atol=1e-4)
        np.testing.assert_allclose([raw for raw, _ in pushed], whole, atol=1e-4)


def test_viper_is_the_likelihood_of_a_videogpt_model_and_skip_and_samples_do_not_apply(model, video):
    viper = RewardScorer(model, ScoreConfig(reward_type="viper", skip_step=4, num_samples=3, standardize=False))
    assert (viper.cfg.reward_type, viper.cfg.skip_step, viper.cfg.num_samples) == ("likelihood", 0, 1)
    likelihood = RewardScorer(model, ScoreConfig(reward_type="likelihood", standardize=False))
    np.testing.assert_array_equal(viper.score_episode(video).raw, likelihood.score_episode(video).raw)
    assert model.reward_type == "likelihood"  # what --reward-type auto scores with an imported VIPER
    with pytest.raises(UserError, match="needs a VideoGPT model"):
        RewardModel.from_preset("tiny").resolve_reward_type("viper")
    with pytest.raises(UserError, match="need a VQ-Diffusion model"):
        viper.sample_next_tokens(torch.zeros(1, 128, dtype=torch.long), np.zeros(1), 1)
    with pytest.raises(UserError, match="likelihood_ratio is for VQ-Diffusion models"):
        RewardScorer(model, ScoreConfig(reward_type="likelihood_ratio", standardize=False))


def test_paper_preset_has_exactly_the_full_size_upstream_keys_and_shapes():
    spec = json.loads((FIXTURES / "full_size_state_dict_keys.json").read_text())["videogpt_checkpoint"]
    config = get_preset("paper", "videogpt")
    with torch.device("meta"):
        m = RewardModel(config)
    ours = {f"vqgan.{k}": list(v.shape) for k, v in m.codec.state_dict().items()}
    ours |= {k: list(v.shape) for k, v in m.video.state_dict().items()}  # video.transformer.* = their transformer.*
    theirs = {e["key"]: e["shape"] for e in spec["keys"] if not e["key"].endswith("attn.mask")}
    assert ours == theirs
    gpt = sum(p.numel() for p in m.video.parameters())
    assert gpt == sum(int(np.prod(s)) for k, s in theirs.items() if k.startswith("transformer."))


def test_model_file_round_trip_says_videogpt_and_scores_the_same(model, video, tmp_path):
    path = model.save(tmp_path / "viper.safetensors")
    loaded = RewardModel.load(path)
    assert loaded.video_model == "videogpt" and loaded.config == model.config
    cfg = ScoreConfig(reward_type="viper", task="tiny-v0")
    np.testing.assert_array_equal(RewardScorer(loaded, cfg).score_episode(video).reward,
                                  RewardScorer(model, cfg).score_episode(video).reward)


def test_cli_import_and_score(paths, runs, video, tmp_path, capsys):
    run = next(r for r in runs if r["reward_type"] == "likelihood" and not r["compute_joint"])
    out, frames, rewards = tmp_path / "viper.safetensors", tmp_path / "frames.npy", tmp_path / "r.npy"
    np.save(frames, video)
    assert main(["import-upstream", "--video-checkpoint", str(paths["ckpt"]), "--video-config", str(paths["config"]),
                 "--stats", str(FIXTURES / run["stat_path"].lstrip("/")), "--out", str(out)]) == 0
    assert main(["score", "--model", str(out), "--frames", str(frames), "--reward-type", "viper", "--task",
                 run["task_name"], "--out", str(rewards)]) == 0
    np.testing.assert_allclose(np.load(rewards), ref("likelihood_standardized").reshape(-1), atol=1e-4)
    capsys.readouterr()


def _edited_checkpoint(paths, tmp_path, edit) -> Path:
    sd = torch.load(paths["ckpt"], weights_only=True)
    edit(sd)
    bad = tmp_path / "videogpt.pt"
    torch.save(sd, bad)
    return bad


def test_import_refuses_what_it_cannot_map(paths, tmp_path):
    def not_causal(sd):
        key = next(k for k in sd if k.endswith("attn.mask"))
        sd[key] = torch.ones_like(sd[key])

    def extra_key(sd):
        sd["transformer.extra.weight"] = torch.zeros(1)

    for edit, message in ((not_causal, "is not a causal mask"), (extra_key, "unexpected keys")):
        with pytest.raises(UserError, match=message):
            import_upstream_videogpt(_edited_checkpoint(paths, tmp_path, edit), paths["config"])
    cfg = yaml.safe_load(paths["config"].read_text())
    for field, value, message in (("use_vqemb", False, "use_vqemb false"), ("num_frames", "${nowhere}", "names no")):
        bad = tmp_path / "config.yaml"
        bad.write_text(yaml.safe_dump(cfg | {field: value}))
        with pytest.raises(UserError, match=message):
            import_upstream_videogpt(paths["ckpt"], bad)


# ------------------------------------------------------------------------------------ a VideoGPT trained here

TASK = "button-press-v3"
STEPS = 40


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from diffusion_reward.data import DatasetWriter
    from diffusion_reward.report.episodes import collect
    from diffusion_reward.training import TrainConfig, train_reward_model

    root = tmp_path_factory.mktemp("viper")
    experts = collect(TASK, 6, seed=0, max_steps=STEPS, epsilons=(0.0,), progress=False)
    with DatasetWriter(root / "expert.h5", env_args={"task": TASK, "image_size": 64}) as w:
        for e in experts:
            w.write_episode(obs={"image": e.frames}, success=e.success)
    cfg = TrainConfig(data=[str(root / "expert.h5")], out=str(root / "viper.safetensors"), preset="tiny",
                      video_model="videogpt", codec_steps=60, video_steps=600, codec_batch_size=16, batch_size=16,
                      disc_start=10**9, warmup_steps=10, val_fraction=0.0, seed=0, progress=False, bf16=False)
    return RewardModel.load(train_reward_model(cfg))


@pytest.mark.slow  # trains a VideoGPT: minutes on 2 cores
def test_a_tiny_videogpt_trained_here_ranks_expert_above_random_episodes(trained):
    assert trained.video_model == "videogpt"
    episodes = collect_eval()
    scorer = RewardScorer(trained, ScoreConfig(reward_type="viper", standardize=False))
    means = {(e.epsilon, e.seed): float(scorer.score_episode(e.frames).raw.mean()) for e in episodes}
    expert = np.array([means[(0.0, s)] for s in (100, 101, 102)])
    random = np.array([means[(1.0, s)] for s in (100, 101, 102)])
    # measured: expert -26 / -36 / -45 nats, random -64 / -63 / -49 (the last scene is the closest)
    assert expert.mean() > random.mean() + 5.0, (expert, random)
    assert (expert > random).all(), (expert, random)


def collect_eval():
    from diffusion_reward.report.episodes import collect

    return collect(TASK, 3, seed=100, max_steps=STEPS, epsilons=(0.0, 1.0), progress=False)
