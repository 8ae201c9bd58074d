"""`diffusion-reward report`: the QA report renders (metrics.json, report.md, PNGs) for tiny models, with
episodes collected in MetaWorld or read from a dataset; numpy AUROC / Spearman agree with their definitions."""
from __future__ import annotations

import json
from itertools import product

import numpy as np
import pytest

from diffusion_reward.cli import main as cli_main
from diffusion_reward.data import DatasetWriter
from diffusion_reward.models import RewardModel
from diffusion_reward.report import auroc, rankdata, spearman
from diffusion_reward.report.episodes import collect

TASK = "button-press-v3"


def test_rank_metrics_match_their_definitions():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 9).astype(float), rng.integers(0, 4, 7).astype(float)  # many ties
    pairs = [(x > y) + 0.5 * (x == y) for x, y in product(a, b)]
    assert auroc(a, b) == pytest.approx(np.mean(pairs))
    assert auroc([3, 4], [1, 2]) == 1.0 and auroc([1, 2], [3, 4]) == 0.0
    assert rankdata([10, 20, 20, 5]).tolist() == [2.0, 3.5, 3.5, 1.0]
    x = rng.normal(size=20)
    assert spearman(x, np.exp(x)) == pytest.approx(1.0) and spearman(x, -x) == pytest.approx(-1.0)
    ra, rb = rankdata(x), rankdata(x**2)
    assert spearman(x, x**2) == pytest.approx(np.corrcoef(ra, rb)[0, 1])
    assert np.isnan(spearman([1, 2, 3], [5, 5, 5]))


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    plain = RewardModel.from_preset("tiny", seed=0).save(root / "a.safetensors")
    with_stats = RewardModel.from_preset("tiny", seed=1)
    with_stats.set_stats(TASK, "entropy", 9, 1, mean=-250.0, std=10.0)
    return plain, with_stats.save(root / "b.safetensors")


def test_report_compares_diffusion_reward_with_viper(models, tmp_path, capsys):
    viper = RewardModel.from_preset("tiny", seed=2, video_model="videogpt").save(tmp_path / "viper.safetensors")
    out = tmp_path / "qa"
    code = cli_main(["report", "--model", str(models[0]), "--compare-model", str(viper), "--task", TASK,
                     "--episodes", "1", "--max-steps", "5", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert (m["reward_type"], m["compare_model"]["reward_type"]) == ("entropy", "likelihood")  # each model's own
    assert m["compare_model"]["model_config"]["video_model"] == "videogpt"
    assert "tiny videogpt" in (out / "report.md").read_text()
    assert [r["reward_type"] for r in m["side_by_side"]] == ["entropy", "likelihood"]
    assert m["other_reward_types"] == {}  # one reward type each


def test_report_scores_both_models_with_both_reward_types_side_by_side(models, tmp_path, capsys):
    """The paper's 2 x 2 (Fig. 11a): diffusion vs VideoGPT model, entropy vs likelihood reward, same episodes."""
    viper = RewardModel.from_preset("tiny", seed=2, video_model="videogpt").save(tmp_path / "viper.safetensors")
    out = tmp_path / "qa"
    code = cli_main(["report", "--model", str(models[0]), "--compare-model", str(viper), "--task", TASK,
                     "--episodes", "1", "--max-steps", "5", "--reward-type", "entropy,likelihood", "--out", str(out),
                     "--no-progress"])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    rows = m["side_by_side"]
    assert [(r["scorer"].split(" (")[0], r["reward_type"]) for r in rows] == [
        ("model", "entropy"), ("model", "likelihood"), ("compare_model", "entropy"), ("compare_model", "likelihood")]
    assert all(r["scorer"].endswith(r["reward_type"]) for r in rows) and "videogpt" in rows[2]["scorer"]
    assert set(m["other_reward_types"]) == {"model/likelihood", "compare_model/likelihood"}
    assert m["other_reward_types"]["model/likelihood"]["reward_type"] == "likelihood"
    full = {("model", "entropy"): m, ("compare_model", "entropy"): m["compare_model"],
            ("model", "likelihood"): m["other_reward_types"]["model/likelihood"],
            ("compare_model", "likelihood"): m["other_reward_types"]["compare_model/likelihood"]}
    for r in rows:  # the compact row is the full summary's numbers
        summary = full[(r["scorer"].split(" (")[0], r["reward_type"])]
        assert r["whole"]["auroc_vs_eps1"] == summary["whole"]["auroc_expert_vs"]["1.0"]["value"]
        assert r["task_rows"]["spearman_epsilon"] == summary["task_rows"]["spearman_epsilon"]["value"]
    entropy, likelihood = (m["other_reward_types"]["model/likelihood"], m)
    assert likelihood["whole"]["per_group"]["0.0"]["mean"] != entropy["whole"]["per_group"]["0.0"]["mean"]
    assert (out / "reward_curves_compared.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "report.md").read_text()
    assert "## Side by side" in md and md.count("| model (tiny vqdiffusion") == 2
    assert capsys.readouterr().out.count(": task rows AUROC vs eps 1") == 4

    code = cli_main(["report", "--model", str(models[0]), "--task", TASK, "--reward-type", "entropy,variance",
                     "--out", str(tmp_path / "bad")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "variance" in err[0] and not (tmp_path / "bad").exists()


def test_report_from_simulation_compares_two_models(models, tmp_path, capsys):
    plain, with_stats = models
    out = tmp_path / "qa"
    code = cli_main(["report", "--model", str(plain), "--compare-model", str(with_stats), "--task", TASK,
                     "--episodes", "1", "--max-steps", "5", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    for name in ("metrics.json", "report.md", "reward_curves.png", "reward_histogram.png", "episode_expert.png",
                 "auroc_comparison.png"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "reward_curves.png").read_bytes()[:4] == b"\x89PNG"
    m = json.loads((out / "metrics.json").read_text())
    assert m["reward_scale"] == "raw" and m["compare_model"]["reward_scale"] == "standardised"
    groups = ["0.0", "0.25", "0.5", "0.75", "1.0", "zero-action", "frozen-first-frame"]
    for view in ("task_rows", "whole"):
        assert list(m[view]["per_group"]) == groups
        assert all(v["episodes"] == 1 for v in m[view]["per_group"].values())
        auroc_vs = m[view]["auroc_expert_vs"]
        assert list(auroc_vs) == groups[1:]
        assert all(a["value"] in (0.0, 0.5, 1.0) and a["n"] == [1, 1] for a in auroc_vs.values())  # 1 vs 1
        # one seed: the paired comparison is the same single comparison
        assert m[view]["paired_win_rate_expert_vs"] == {g: a["value"] for g, a in auroc_vs.items()}
        assert -1.0 <= m[view]["spearman_epsilon"]["value"] <= 1.0
    assert set(m["stillness"]["static_fraction"]) == set(groups)
    assert m["stillness"]["static_fraction"]["frozen-first-frame"] == 1.0  # the same frame repeated
    assert m["model_hash"] == RewardModel.load(plain).weights_hash != m["compare_model"]["model_hash"]
    # standardised = (raw - mean) / std of the stored statistics: the same episodes, other model, other scale
    assert m["compare_model"]["whole"]["per_group"]["0.0"]["mean"] != m["whole"]["per_group"]["0.0"]["mean"]
    md = (out / "report.md").read_text()
    assert m["reward_type"] == m["compare_model"]["reward_type"] == "entropy"  # "auto": files that do not say
    assert "Rewards (entropy) are **raw**" in md and "Rewards (entropy) are **standardised**" in md
    assert "Spearman" in md
    assert "frozen-first-frame" in md and "Stillness diagnostics" in md


def test_report_reads_episodes_from_a_dataset(models, tmp_path, capsys):
    plain, _ = models
    episodes = collect(TASK, 2, seed=5, max_steps=4, epsilons=(0.0, 1.0), progress=False)
    data = tmp_path / "episodes.h5"
    with DatasetWriter(data, env_args={"task": TASK, "image_size": 64}) as w:
        for e in episodes:
            w.write_episode(obs={"image": e.frames}, success=e.success, attrs={"epsilon": e.epsilon, "seed": e.seed})
    out = tmp_path / "qa"
    assert cli_main(["report", "--model", str(plain), "--task", TASK, "--data", str(data), "--out", str(out),
                     "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["episodes_source"] == str(data)
    assert {k: v["episodes"] for k, v in m["whole"]["per_group"].items()} == {"0.0": 2, "1.0": 2,
                                                                              "frozen-first-frame": 2}
    code = cli_main(["report", "--model", str(plain), "--task", "door-open-v3", "--data", str(data),
                     "--out", str(tmp_path / "qa_door")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "door-open-v3" in err[0]


def test_ssim_and_psnr_of_identical_similar_and_different_images():
    from diffusion_reward.report.diversity import psnr, ssim

    rng = np.random.default_rng(0)
    import torch

    a = torch.from_numpy(rng.random((2, 3, 16, 16))).float()
    noisy = (a + 0.05 * torch.from_numpy(rng.normal(size=a.shape)).float()).clamp(0, 1)
    other = torch.from_numpy(rng.random((2, 3, 16, 16))).float()
    assert ssim(a, a).tolist() == pytest.approx([1.0, 1.0])
    assert (ssim(a, noisy) > ssim(a, other)).all() and (ssim(a, other) < 0.2).all()
    assert (psnr(a, noisy) > 20).all() and (psnr(a, other) < 10).all()


@pytest.mark.slow  # decodes sampled next frames for every episode: the slow tier
def test_report_diversity_samples_next_frames_seeded_like_the_reward(models, tmp_path, capsys):
    from diffusion_reward.reward import RewardScorer, ScoreConfig

    plain, _ = models
    model = RewardModel.load(plain)
    scorer = RewardScorer(model, ScoreConfig(standardize=False))
    frames = collect(TASK, 1, seed=3, max_steps=3, epsilons=(0.0,), progress=False)[0].frames
    tokens = model.tokenize(frames)
    rows = np.arange(len(frames))
    cond, _ = scorer.condition_rows(tokens, rows)
    trace: dict = {}
    scorer.score_tokens(cond, None, rows, trace=trace)
    samples = scorer.sample_next_tokens(cond, rows, 3)
    assert samples.shape == (3, len(rows), 64)
    assert torch_equal(samples[0], trace["x0_hat"])  # sample 0 is the frame the reward scored
    assert not torch_equal(samples[1], samples[2])

    out = tmp_path / "qa"
    assert cli_main(["report", "--model", str(plain), "--task", TASK, "--episodes", "1", "--max-steps", "3",
                     "--out", str(out), "--diversity", "--diversity-samples", "3", "--no-progress"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    d = m["diversity"]
    assert list(d) == ["0.0", "0.25", "0.5", "0.75", "1.0", "zero-action", "frozen-first-frame"]
    assert all(0 < v["contexts"] <= 4 and -1 <= v["ssim"] <= 1 and v["psnr"] > 0 for v in d.values())
    assert "Diversity of sampled next frames" in (out / "report.md").read_text()
    assert "diversity 1.0: SSIM" in capsys.readouterr().out


def torch_equal(a, b) -> bool:
    return bool((a == b).all())
