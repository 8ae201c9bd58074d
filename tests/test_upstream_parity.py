"""Parity with the authors' code on the upstream fixtures in tests/fixtures/upstream_parity (checkpoints in their
on-disk format + reference outputs of their code). Everything is discovered from the fixture folder and its
manifest: no sizes, names or values are hard-coded, so a different fixture set (DIFFUSION_REWARD_PARITY_FIXTURES=...)
is checked the same way."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.upstream import import_upstream
from diffusion_reward.upstream.importer import add_upstream_stats

FIXTURES = Path(os.environ.get("DIFFUSION_REWARD_PARITY_FIXTURES",
                               Path(__file__).resolve().parent / "fixtures" / "upstream_parity"))
RUN_FILES = sorted(FIXTURES.glob("reward_configs/*.yaml"))  # the fixtures ship in tests/fixtures/: never skipped


def _one(pattern: str) -> Path:
    found = sorted(FIXTURES.glob(pattern))
    assert len(found) == 1, f"expected one {pattern} in {FIXTURES}, found {found}"
    return found[0]


def ref(name: str) -> np.ndarray:
    return np.load(FIXTURES / "reference" / f"{name}.npy")


@pytest.fixture(scope="module")
def manifest():
    return json.loads((FIXTURES / "manifest.json").read_text())


@pytest.fixture(scope="module")
def paths():
    return {"ckpt": _one("exp_local/video_models/vqdiffusion/*/checkpoint/best.pth"),
            "config": _one("exp_local/video_models/vqdiffusion/*/.hydra/config.yaml"),
            "codec": _one("exp_local/codec_models/vqgan/*/results/checkpoints/vqgan.pt")}


@pytest.fixture(scope="module")
def reward_runs():
    return [yaml.safe_load(p.read_text()) for p in RUN_FILES]


@pytest.fixture(scope="module")
def model(paths, reward_runs):
    m = import_upstream(paths["ckpt"], paths["config"], codec_checkpoint=paths["codec"])
    for run in reward_runs:  # the statistics each run names (stat_path is repo-root relative, leading "/")
        add_upstream_stats(m, FIXTURES / run["stat_path"].lstrip("/"), run["task_name"], run["reward_type"])
    return m


@pytest.fixture(scope="module")
def video():
    return np.load(FIXTURES / "inputs" / "video_uint8_THWC.npy")


def test_codec_tokens_latent_and_decode_match(model, video):
    tokens = model.tokenize(video)
    np.testing.assert_array_equal(tokens.numpy(), ref("vqgan_tokens"))
    frame0 = torch.from_numpy(video[:1]).float().div(127.5).sub(1).permute(0, 3, 1, 2)
    with torch.no_grad():
        np.testing.assert_allclose(model.codec.encode_latent(frame0).numpy(), ref("vqgan_frame0_quant_conv_out"),
                                   atol=1e-4)
        decoded = model.codec.decode_tokens(tokens[:1])
    np.testing.assert_allclose(decoded.numpy(), ref("vqgan_frame0_decoded_raw"), atol=1e-4)
    post = ((decoded + 1) * 127.5).clamp(0, 255)
    np.testing.assert_allclose(post.numpy(), ref("vqgan_frame0_decoded_postprocessed"), atol=2e-2)


def _denoise(m: RewardModel) -> np.ndarray:
    xt, cond, t = (torch.from_numpy(ref(n)) for n in ("denoiser_xt_tokens", "denoiser_cond_tokens", "denoiser_t"))
    with torch.no_grad():
        return np.concatenate([m.video.predict_start(xt[i:i + 1], t[i:i + 1],
                                                     m.video.condition(cond[i:i + 1]))
                               for i in range(len(t))])


def test_denoiser_uses_ema_weights(model, paths):
    out = _denoise(model)
    np.testing.assert_allclose(out, ref("denoiser_log_x0"), atol=1e-4)
    assert np.abs(out - ref("denoiser_log_x0_nonema")).max() > 1e-3  # the non-EMA copy must NOT be what we load


@pytest.mark.parametrize("run_file", RUN_FILES, ids=[p.stem for p in RUN_FILES])
def test_rewards_no_noise_match_raw_standardized_and_calc_reward(model, video, run_file):
    run = yaml.safe_load(run_file.read_text())
    compat = run["reward_type"] == "likelihood"
    cfg = ScoreConfig(reward_type=run["reward_type"], skip_step=run["skip_step"], num_samples=run["num_sample"],
                      noise=bool(run["noise"]), task=run["task_name"], standardize=True, likelihood_compat=compat)
    scorer = RewardScorer(model, cfg)
    res = scorer.score_episode(video)
    prefix = f"{run['reward_type']}_skip{run['skip_step']}"
    np.testing.assert_allclose(res.raw, ref(f"{prefix}_raw").reshape(-1), atol=1e-3)
    np.testing.assert_allclose(res.reward, ref(f"{prefix}_standardized").reshape(-1), atol=1e-4)
    calc_reward = (1 - run["expl_scale"]) * res.reward
    np.testing.assert_allclose(calc_reward, ref(f"{prefix}_calc_reward").reshape(-1), atol=1e-5)

    tokens = model.tokenize(video)
    rows = np.arange(len(video))
    cond, target = scorer.condition_rows(tokens, rows)
    np.testing.assert_array_equal(cond.numpy(), ref(f"{prefix}_cond_tokens"))
    trace: dict = {}
    scorer.score_tokens(cond, target, rows, trace=trace)
    terms = trace["terms"].numpy()
    if compat:
        np.testing.assert_array_equal(target.numpy(), ref(f"{prefix}_content_tokens"))
        np.testing.assert_allclose(terms, ref(f"{prefix}_step_terms"), atol=1e-3)
    else:
        np.testing.assert_array_equal(trace["x0_hat"].numpy(), ref(f"{prefix}_x0hat_tokens"))
        np.testing.assert_allclose(-terms[:, :-1], ref(f"{prefix}_kl_terms"), atol=1e-3)
        np.testing.assert_allclose(terms[:, -1], ref(f"{prefix}_final_loglik"), atol=1e-3)


def test_stored_noise_run_matches(model, manifest):
    codes = np.load(FIXTURES / "inputs" / "injected_noise_entropy_skip9_uniform_codes_uint16.npy")
    uniforms = torch.from_numpy((codes.astype(np.float32) + np.float32(0.5)) / np.float32(65536))

    def stored(rows, sample):  # rows index the stored slabs here
        return lambda e: uniforms[e][torch.as_tensor(rows)]

    cfg = ScoreConfig(reward_type="entropy", skip_step=9, noise=True, standardize=False)
    scorer = RewardScorer(model, cfg, noise_source=stored)
    cond = torch.from_numpy(ref("injected_noise_entropy_skip9_cond_tokens"))
    trace: dict = {}
    raw = scorer.score_tokens(cond, None, np.arange(len(cond)), trace=trace)
    np.testing.assert_allclose(raw, ref("injected_noise_entropy_skip9_raw"), atol=1e-3)
    np.testing.assert_array_equal(trace["x_t"].numpy(), ref("injected_noise_entropy_skip9_xt_tokens"))
    np.testing.assert_array_equal(trace["x0_hat"].numpy(), ref("injected_noise_entropy_skip9_x0hat_tokens"))
    np.testing.assert_allclose(-trace["terms"][:, :-1].numpy(), ref("injected_noise_entropy_skip9_kl_terms"),
                               atol=1e-3)
    # the injected rows are rows of the episode's entropy batch
    assert len(manifest["injected_noise"]["rows_of_entropy_batch"]) == len(cond)


def test_paper_preset_has_exactly_the_full_size_upstream_keys_and_shapes():
    spec = json.loads((FIXTURES / "full_size_state_dict_keys.json").read_text())
    m = RewardModel.from_preset("paper")
    codec = {k: list(v.shape) for k, v in m.codec.state_dict().items()}
    video = {k: list(v.shape) for k, v in m.video.state_dict().items()}
    assert codec == {e["key"]: e["shape"] for e in spec["vqgan_checkpoint"]["keys"]}
    ema = {e["key"]: e["shape"] for e in spec["vqdiffusion_checkpoint"]["ema"]["keys"]
           if not e["key"].endswith("attn2.mask")}
    assert video == ema
    model_keys = {e["key"] for e in spec["vqdiffusion_checkpoint"]["model"]["keys"]}
    assert model_keys == ({f"content_codec.model.{k}" for k in codec}
                          | {f"transformer.{e['key']}" for e in spec["vqdiffusion_checkpoint"]["ema"]["keys"]})
    assert sum(p.numel() for p in m.parameters()) == spec["vqdiffusion_checkpoint"]["model"]["num_parameters"]


def test_full_size_hydra_config_maps_to_the_paper_preset(paths):
    from diffusion_reward.models import get_preset
    from diffusion_reward.upstream import config_from_hydra

    cfg = yaml.safe_load(paths["config"].read_text())
    p = cfg["model"]["params"]
    p["content_codec_config"]["params"]["args"].update(latent_dim=64, num_codebook_vectors=1024,
                                                        channels=[128, 128, 256, 256])
    d = p["diffusion_config"]["params"]
    d["transformer_config"]["params"].update(n_layer=16, n_embd=128, n_head=16, condition_dim=1024)
    d["condition_emb_config"]["params"].update(num_embed=1024, embed_dim=1024)
    d["content_emb_config"]["params"].update(num_embed=1024, embed_dim=128)
    mapped, paper = config_from_hydra(cfg), get_preset("paper")
    assert (mapped.codec, mapped.video) == (paper.codec, paper.video)


# --------------------------------------------------------------------------------------------------- importer errors

def test_missing_or_unexpected_keys_are_listed(paths, tmp_path):
    ckpt = torch.load(paths["ckpt"], weights_only=True)
    first = next(iter(k for k in ckpt["ema"] if k.startswith("transformer.")))
    del ckpt["ema"][first]
    ckpt["ema"]["transformer.extra.weight"] = torch.zeros(1)
    bad = tmp_path / "best.pth"
    torch.save(ckpt, bad)
    with pytest.raises(UserError) as err:
        import_upstream(bad, paths["config"])
    assert first in str(err.value) and "transformer.extra.weight" in str(err.value)


def test_config_that_does_not_fit_the_checkpoint_is_refused(paths, tmp_path):
    cfg = yaml.safe_load(paths["config"].read_text())
    tp = cfg["model"]["params"]["diffusion_config"]["params"]["transformer_config"]["params"]
    tp["n_layer"] = int(tp["n_layer"]) + 1
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match="missing keys"):
        import_upstream(paths["ckpt"], bad)


def _cli(capsys, *args) -> tuple[int, str]:
    from diffusion_reward.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_cli_import_writes_a_model_that_scores_like_upstream(paths, reward_runs, video, tmp_path, capsys):
    run = next(r for r in reward_runs if r["reward_type"] == "entropy")
    stats = FIXTURES / run["stat_path"].lstrip("/")
    out = tmp_path / "imported.safetensors"
    code, err = _cli(capsys, "import-upstream", "--video-checkpoint", paths["ckpt"], "--video-config",
                     paths["config"], "--codec-checkpoint", paths["codec"], "--stats", stats, "--task",
                     run["task_name"], "--out", out)
    assert code == 0, err
    m = RewardModel.load(out)
    assert m.provenance["imported_from"]["codec_crosscheck"] == "identical"
    assert m.get_stats(run["task_name"], "entropy", run["skip_step"], 1)
    frames = tmp_path / "frames.npy"
    np.save(frames, video)
    rewards = tmp_path / "r.npy"
    code, err = _cli(capsys, "score", "--model", out, "--frames", frames, "--no-noise", "--skip-step",
                     run["skip_step"], "--task", run["task_name"], "--out", rewards)
    assert code == 0, err
    prefix = f"entropy_skip{run['skip_step']}"
    np.testing.assert_allclose(np.load(rewards), ref(f"{prefix}_standardized"), atol=1e-4)


def test_cli_import_bad_inputs_fail_in_one_line_without_output(paths, tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    not_a_ckpt = tmp_path / "junk.pth"
    not_a_ckpt.write_bytes(b"\x00junk" * 10)
    for args in (["--video-checkpoint", not_a_ckpt, "--video-config", paths["config"]],
                 ["--video-checkpoint", paths["ckpt"], "--video-config", paths["ckpt"]],
                 ["--video-checkpoint", paths["ckpt"], "--video-config", paths["config"],
                  "--stats", paths["config"], "--reward-type", "entropy"]):
        code, err = _cli(capsys, "import-upstream", *args, "--out", out)
        assert code == 2, err
        assert err.count("\n") == 1 and err.startswith("error: "), err
        assert not out.exists()


def test_streaming_reproduces_the_batch_in_upstream_likelihood_layout(model, video, reward_runs):
    run = next((r for r in reward_runs if r["reward_type"] == "likelihood"), None)
    if run is None:
        pytest.skip("fixture set has no likelihood run")
    cfg = ScoreConfig(reward_type="likelihood", skip_step=run["skip_step"], noise=False, standardize=False,
                      likelihood_compat=True)
    stream = RewardScorer(model, cfg).stream()
    pushed = [stream.push(f)[0] for f in video] + [r for r, _ in stream.finish()]
    np.testing.assert_allclose(pushed, ref(f"likelihood_skip{run['skip_step']}_raw").reshape(-1), atol=1e-3)


def test_unresolved_interpolation_in_config_is_a_user_error(paths, tmp_path):
    cfg = yaml.safe_load(paths["config"].read_text())
    cfg["model"]["params"]["content_codec_config"]["params"]["args"]["resolution"] = "${image_size}"
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    with pytest.raises(UserError, match="interpolation"):
        import_upstream(paths["ckpt"], bad)
