"""A quickly trained tiny reward model scores expert MetaWorld episodes above random-action (epsilon 1) episodes
and above a frozen robot in the same scenes: the whole training path on real rendered frames, in about a minute
of CPU. Frame skip 4 + likelihood reward, the combination that ranks frozen robots below the expert (README,
reward quality); the same tiny model at frame skip 1 scores the frozen controls level with the expert."""
from __future__ import annotations

import numpy as np
import pytest

from diffusion_reward.data import DatasetWriter
from diffusion_reward.models import RewardModel
from diffusion_reward.report.episodes import collect
from diffusion_reward.reward import RewardScorer, ScoreConfig
from diffusion_reward.training import TrainConfig, train_reward_model

TASK = "button-press-v3"
STEPS = 40  # agent steps per episode: the expert reaches and presses the button within them
BF16 = False  # float32 training: the same model on every CPU (bf16 autocast depends on the hardware)
FRAME_SKIP = 4

pytestmark = pytest.mark.slow  # trains a model: minutes on 2 cores; `.ci/run` runs the slow tier too


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    experts = collect(TASK, 6, seed=0, max_steps=STEPS, epsilons=(0.0,), progress=False)
    with DatasetWriter(root / "expert.h5", env_args={"task": TASK, "image_size": 64}) as w:
        for e in experts:
            w.write_episode(obs={"image": e.frames}, success=e.success)
    cfg = TrainConfig(data=[str(root / "expert.h5")], out=str(root / "model.safetensors"), preset="tiny",
                      codec_steps=60, video_steps=400, codec_batch_size=16, batch_size=16, disc_start=10**9,
                      warmup_steps=10, val_fraction=0.0, seed=0, progress=False, bf16=BF16,
                      frame_skip=FRAME_SKIP)
    return RewardModel.load(train_reward_model(cfg))


def test_expert_episodes_score_higher_than_random_and_frozen_episodes(trained):
    # the same three reset seeds (scenes) at epsilon 0 and 1 and frozen (zero action, first frame repeated),
    # none of them in the training data
    episodes = collect(TASK, 3, seed=100, max_steps=STEPS, epsilons=(0.0, 1.0), controls=True, progress=False)
    scorer = RewardScorer(trained, ScoreConfig(task=TASK, standardize=False, seed=0, reward_type="likelihood"))
    means = {(e.kind if e.epsilon is None else e.epsilon, e.seed): float(scorer.score_episode(e.frames).raw.mean())
             for e in episodes}
    expert = np.array([means[(0.0, s)] for s in (100, 101, 102)])
    assert all(e.success for e in episodes if e.epsilon == 0.0)
    for other in (1.0, "zero-action", "frozen-first-frame"):
        scores = np.array([means[(other, s)] for s in (100, 101, 102)])
        assert expert.mean() > scores.mean() + 2.0, (other, expert, scores)  # nats
        assert (expert > scores).all(), (other, expert, scores)
