"""RewardScorer on a random tiny model: batch == chunked == streaming, seeds, bf16, input validation, CLI errors."""
from __future__ import annotations

import numpy as np
import pytest

from diffusion_reward.errors import UserError
from diffusion_reward.models import RewardModel
from diffusion_reward.models.presets import get_preset
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.reward.scorer import eval_timesteps


@pytest.fixture(scope="module", params=["repeat", "token"])
def model(request):
    """The tiny preset with either context padding (upstream's repeated frame, or the learned [PAD] frame)."""
    m = RewardModel.from_config(dataclasses_replace_padding(request.param), seed=3)
    m.set_stats("toy", "entropy", 9, 1, -100.0, 5.0)
    return m


@pytest.fixture(scope="module")
def episode():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (1, 64, 64, 3), dtype=np.uint8)
    drift = rng.integers(-20, 21, (7, 64, 64, 3))
    return np.clip(base + np.cumsum(drift, 0), 0, 255).astype(np.uint8)


def raw(model, frames, **kw):
    return RewardScorer(model, ScoreConfig(standardize=False, **kw)).score_episode(frames).raw


def test_token_padding_marks_history_before_the_start_and_only_there():
    from diffusion_reward.models.video import context_window

    rows = np.arange(4)
    assert context_window(rows, 2, 1, "repeat").tolist() == [[0, 0], [0, 1], [1, 2], [2, 3]]
    assert context_window(rows, 2, 1, "token").tolist() == [[-1, 0], [0, 1], [1, 2], [2, 3]]
    assert context_window(rows, 3, 2, "token").tolist() == [[-1, -1, 0], [-1, -1, 1], [-1, 0, 2], [-1, 1, 3]]
    m = RewardModel.from_config(dataclasses_replace_padding("token"), seed=0)  # row 0 is ([PAD], f0), not (f0, f0)
    scorer = RewardScorer(m, ScoreConfig(standardize=False))
    tokens = m.tokenize(np.zeros((3, 64, 64, 3), np.uint8))
    cond, _ = scorer.condition_rows(tokens, np.arange(3))
    assert (cond[0, :64] == m.video.pad_id).all() and (cond[0, 64:] == tokens[0]).all()
    assert (cond[1:] < m.video.pad_id).all()
    with pytest.raises(UserError, match="learned context embedding"):
        get_preset("paper").video.__class__(context_padding="token").validate()


def dataclasses_replace_padding(padding: str):
    import dataclasses

    cfg = get_preset("tiny")
    return dataclasses.replace(cfg, video=dataclasses.replace(cfg.video, context_padding=padding))


def test_eval_schedule_matches_the_authors():
    assert eval_timesteps(100, 9) == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9, 0]
    assert len(eval_timesteps(100, 4)) == 21


@pytest.mark.parametrize("reward_type", ["entropy", "likelihood", "likelihood_ratio"])
@pytest.mark.parametrize("noise", [True, False])
def test_batch_chunked_and_streaming_give_the_same_numbers(model, episode, reward_type, noise):
    cfg = dict(reward_type=reward_type, noise=noise, seed=7, skip_step=19)
    batch = raw(model, episode, chunk_size=64, **cfg)
    chunked = raw(model, episode, chunk_size=3, **cfg)
    stream = RewardScorer(model, ScoreConfig(standardize=False, **cfg)).stream()
    pushed = [r for r in (stream.push(f) for f in episode) if r is not None] + stream.finish()
    assert batch.shape == (len(episode),) and np.isfinite(batch).all()
    np.testing.assert_allclose(chunked, batch, atol=1e-4)
    np.testing.assert_allclose([r for r, _ in pushed], batch, atol=1e-4)
    stream.reset()  # a reset stream starts a new episode
    first = stream.push(episode[0])
    if reward_type == "entropy":
        np.testing.assert_allclose(first[0], batch[0], atol=1e-4)
    else:
        assert first is None  # likelihood row 0 waits for frame 1


@pytest.mark.parametrize("noise", [True, False])
def test_likelihood_ratio_is_the_next_frame_against_the_current_one_on_one_chain(model, episode, noise):
    cfg = dict(noise=noise, seed=5, skip_step=19)
    ratio = raw(model, episode, reward_type="likelihood_ratio", **cfg)
    likelihood = RewardScorer(model, ScoreConfig(reward_type="likelihood", standardize=False, **cfg))
    tokens = model.tokenize(episode)
    rows = np.arange(len(episode) - likelihood.lookahead)
    cond, successor = likelihood.condition_rows(tokens, rows)
    expected = likelihood.score_tokens(cond, successor, rows) - likelihood.score_tokens(cond, tokens[rows], rows)
    np.testing.assert_allclose(ratio[rows], expected, atol=1e-4)
    np.testing.assert_allclose(raw(model, episode, reward_type="likelihood", **cfg)[rows],
                               likelihood.score_tokens(cond, successor, rows), atol=1e-4)  # the same chain
    assert (ratio[rows[-1]:] == ratio[rows[-1]]).all()  # rows without a successor carry the last one
    still = np.repeat(episode[:1], len(episode), 0)  # a robot that does not move scores exactly 0
    assert (raw(model, still, reward_type="likelihood_ratio", **cfg) == 0).all()
    assert (raw(model, still, reward_type="likelihood", **cfg) != 0).all()


def test_noise_is_seeded_and_matters(model, episode):
    a = raw(model, episode, seed=1, skip_step=19)
    assert np.array_equal(a, raw(model, episode, seed=1, skip_step=19))
    assert not np.allclose(a, raw(model, episode, seed=2, skip_step=19))
    assert not np.allclose(a, raw(model, episode, noise=False, skip_step=19))


def test_num_samples_averages_independent_chains(model, episode):
    one = raw(model, episode, seed=1, skip_step=19)
    two = raw(model, episode, seed=1, skip_step=19, num_samples=2)
    assert not np.allclose(one, two)
    assert np.isfinite(two).all()


def test_entropy_row_ignores_the_scored_frame_likelihood_does_not(model, episode):
    changed = episode.copy()
    changed[-1] = 255 - changed[-1]
    e0, e1 = raw(model, episode, noise=False), raw(model, changed, noise=False)
    np.testing.assert_allclose(e0[:-1], e1[:-1], atol=1e-5)  # last frame only conditions the last row
    l0, l1 = raw(model, episode, reward_type="likelihood"), raw(model, changed, reward_type="likelihood")
    assert not np.allclose(l0[-2], l1[-2])  # row T-2 scores frame T-1
    assert l0[-1] == l0[-2]  # the last row has no successor and carries the previous row


def test_standardised_reward_uses_the_models_stats(model, episode):
    res = RewardScorer(model, ScoreConfig(task="toy", skip_step=9)).score_episode(episode)
    np.testing.assert_allclose(res.reward, (res.raw + 100.0) / 5.0, rtol=1e-6)
    with pytest.raises(UserError, match="diffusion-reward stats"):
        RewardScorer(model, ScoreConfig(task="toy", skip_step=4))


def test_bfloat16_stays_close_to_float32(model, episode):
    f32 = raw(model, episode, noise=False)
    bf16 = raw(model, episode, noise=False, dtype="bfloat16")
    assert np.abs(bf16 - f32).max() < 0.02 * np.abs(f32).max()


def _posterior_inputs(video):
    import torch

    g = torch.Generator().manual_seed(0)
    log_x0 = torch.log_softmax(torch.randn(4, video.num_classes, video.num_tokens, generator=g), 1)
    x_t = torch.randint(0, video.num_classes, (4, video.num_tokens), generator=g)  # [MASK]s among the codes
    x_t[0] = video.mask_id  # all masked (the chain's first step)
    return log_x0, x_t, torch.tensor([0, 1, 40, video.num_timesteps - 1])


def upstream_q_posterior(video, log_x_start, log_x_t, t):
    """VQ-Diffusion's q_posterior as written upstream (dense over a log one-hot x_t), the reference."""
    import torch

    from diffusion_reward.models.video import _extract

    b, _, n = log_x_start.shape
    mask = (log_x_t.argmax(1) == video.mask_id).unsqueeze(1)
    log_one = torch.zeros(b, 1, 1)
    log_zero = torch.log(log_one + 1.0e-30).expand(-1, -1, n)
    log_qt = video.q_pred(log_x_t, t)[:, :-1]
    ct_cumprod = _extract(video.log_cumprod_ct, t).expand(-1, video.num_classes - 1, -1)
    log_qt = (~mask) * log_qt + mask * ct_cumprod
    log_qt_one = torch.cat((video.q_pred_one_timestep(log_x_t, t)[:, :-1], log_zero), dim=1)
    ct_vector = torch.cat((_extract(video.log_ct, t).expand(-1, video.num_classes - 1, -1), log_one), dim=1)
    log_qt_one = (~mask) * log_qt_one + mask * ct_vector
    q = torch.cat((log_x_start[:, :-1] - log_qt, log_zero), dim=1)
    q_log_sum_exp = torch.logsumexp(q, dim=1, keepdim=True)
    q = q - q_log_sum_exp
    return (video.q_pred(q, t - 1) + log_qt_one + q_log_sum_exp).clamp(-70, 0)


def test_scoring_attention_is_trainings_attention():
    """Scoring (no grad) runs the fused kernel, training the explicit softmax: the same function of the inputs."""
    import torch

    from diffusion_reward.models.video import Attention

    torch.manual_seed(0)
    x, src = torch.randn(3, 9, 32), torch.randn(3, 5, 16)
    self_attn, cross_attn = Attention(n_embd=32, n_head=4, kv_dim=32), Attention(n_embd=32, n_head=4, kv_dim=16)
    for attn, kv in ((self_attn, None), (cross_attn, cross_attn.kv(src))):
        with torch.no_grad():
            fused = attn(x, kv)
        explicit = attn(x, kv)
        assert explicit.requires_grad and not fused.requires_grad
        torch.testing.assert_close(fused, explicit.detach(), rtol=1e-5, atol=1e-6)


def test_posterior_from_tokens_is_upstreams_dense_posterior_bit_for_bit(model):
    import torch

    from diffusion_reward.models.video import index_to_log_onehot

    video = model.video
    log_x0, x_t, t = _posterior_inputs(video)
    log_x_t = index_to_log_onehot(x_t, video.num_classes)
    for start in (log_x0, log_x_t):  # the model's prediction, and a one-hot x0 (the KL's true posterior)
        assert torch.equal(video.q_posterior(start, x_t, t), upstream_q_posterior(video, start, log_x_t, t))


def test_diffusion_math_is_float32_inside_the_scorers_autocast_region(model):
    """The scorer opens one bf16 autocast region per chain (weights cast once); the posterior and KL inside it must
    compute exactly what they compute outside it."""
    import torch

    from diffusion_reward.models.video import index_to_log_onehot, multinomial_kl

    video = model.video
    log_x0, x_t, t = _posterior_inputs(video)

    def math():
        post = video.q_posterior(log_x0, x_t, t)
        return post, multinomial_kl(video.q_posterior(index_to_log_onehot(x_t, video.num_classes), x_t, t), post)

    expected = math()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = math()
    for e, o in zip(expected, got):
        assert o.dtype == torch.float32 and torch.equal(e, o)


def test_resize_only_when_asked(model, episode):
    big = np.repeat(np.repeat(episode, 2, axis=1), 3, axis=2)  # 128 x 192
    with pytest.raises(UserError, match=r"\(T, 64, 64, 3\)"):
        raw(model, big)
    assert raw(model, big, resize=True).shape == (len(episode),)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((3, 32, 32, 3), np.uint8), "shape"),
    (np.zeros((3, 64, 64), np.uint8), "shape"),
    (np.zeros((3, 64, 64, 3), np.float32), "uint8"),
    (np.full((3, 64, 64, 3), np.nan, np.float32), "NaN"),
    (np.zeros((0, 64, 64, 3), np.uint8), "no frames"),
])
def test_bad_frames_are_user_errors(model, bad, message):
    with pytest.raises(UserError, match=message):
        raw(model, bad)


def test_likelihood_compat_needs_an_upstream_style_model(model):
    with pytest.raises(UserError, match="likelihood_compat"):
        RewardScorer(model, ScoreConfig(reward_type="likelihood", likelihood_compat=True, standardize=False))


# ------------------------------------------------------------------------------------------------------------- CLI

@pytest.fixture(scope="module")
def model_file(model, tmp_path_factory):
    return model.save(tmp_path_factory.mktemp("model") / "tiny.safetensors")


def _cli(capsys, *args):
    from diffusion_reward.cli import main

    capsys.readouterr()
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


def test_cli_scores_frames_like_the_library(model, model_file, episode, tmp_path, capsys):
    frames, out = tmp_path / "f.npy", tmp_path / "r.npy"
    np.save(frames, episode)
    code, err = _cli(capsys, "score", "--model", model_file, "--frames", frames, "--task", "toy", "--seed", 5,
                     "--out", out)
    assert code == 0, err
    expected = RewardScorer(model, ScoreConfig(task="toy", seed=5)).score_episode(episode).reward
    np.testing.assert_allclose(np.load(out), expected, atol=1e-5)


def test_cli_bad_inputs_one_line_exit_2_no_output(model_file, episode, tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import save_file

    good = tmp_path / "good.npy"
    np.save(good, episode)
    wrong_size, floats, nans = tmp_path / "small.npy", tmp_path / "float.npy", tmp_path / "nan.npy"
    np.save(wrong_size, episode[:, :32, :32])
    np.save(floats, episode.astype(np.float32))
    np.save(nans, np.full(episode.shape, np.nan, np.float32))
    truncated, foreign = tmp_path / "trunc.safetensors", tmp_path / "foreign.safetensors"
    truncated.write_bytes(model_file.read_bytes()[:5000])
    foreign.write_bytes(b"\x80\x04not a model")
    missing = tmp_path / "missing.safetensors"  # our format and metadata, one tensor gone
    with safe_open(model_file, "pt") as f:
        save_file({k: f.get_tensor(k) for k in f.keys() if "to_logits" not in k}, missing, metadata=f.metadata())
    out = tmp_path / "out.npy"
    cases = [
        (model_file, wrong_size, ["--raw"]), (model_file, floats, ["--raw"]), (model_file, nans, ["--raw"]),
        (truncated, good, ["--raw"]), (foreign, good, ["--raw"]), (missing, good, ["--raw"]),
        (model_file, good, ["--task", "no-such-task"]), (model_file, good, []),  # no stats / no task
    ]
    for model_path, frames, extra in cases:
        code, err = _cli(capsys, "score", "--model", model_path, "--frames", frames, *extra, "--out", out)
        assert code == 2, (model_path, frames, err)
        assert err.startswith("error: ") and err.strip().count("\n") == 0, err
        assert not out.exists()


def test_cli_scores_dataset_episodes(model, model_file, episode, tmp_path, capsys):
    from diffusion_reward.data import DatasetWriter

    data = tmp_path / "d.hdf5"
    with DatasetWriter(data, env_args={"task": "toy", "image_size": 64, "image_key": "image"}) as w:
        for ep in (episode, episode[::-1].copy()):
            n = len(ep)
            w.write_episode(obs={"image": ep}, actions=np.zeros((n, 4), np.float32), rewards=np.zeros(n, np.float32),
                            dones=np.zeros(n, bool), timestamps=np.arange(n, dtype=np.float64))
    every, one = tmp_path / "all.npz", tmp_path / "one.npy"
    code, err = _cli(capsys, "score", "--model", model_file, "--data", data, "--out", every)  # task from the dataset
    assert code == 0, err
    code, err = _cli(capsys, "score", "--model", model_file, "--data", data, "--episode", "1", "--out", one)
    assert code == 0, err
    scorer = RewardScorer(model, ScoreConfig(task="toy"))
    with np.load(every) as rewards:
        assert sorted(rewards.files) == ["demo_0", "demo_1"]
        np.testing.assert_allclose(rewards["demo_0"], scorer.score_episode(episode).reward, atol=1e-5)
        np.testing.assert_allclose(np.load(one), rewards["demo_1"], atol=1e-5)
