"""A quickly trained tiny reward model scores expert MetaWorld episodes above random-action (epsilon 1)
episodes of the same scenes: the whole training path on real rendered frames, in about a minute of CPU."""
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


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("quality")
    experts = collect(TASK, 6, seed=0, max_steps=STEPS, epsilons=(0.0,), progress=False)
    with DatasetWriter(root / "expert.h5", env_args={"task": TASK, "image_size": 64}) as w:
        for e in experts:
            w.write_episode(obs={"image": e.frames}, success=e.success)
    cfg = TrainConfig(data=[str(root / "expert.h5")], out=str(root / "model.safetensors"), preset="tiny",
                      codec_steps=60, video_steps=400, codec_batch_size=16, batch_size=16, disc_start=10**9,
                      warmup_steps=10, val_fraction=0.0, seed=0, progress=False)
    return RewardModel.load(train_reward_model(cfg))


def test_expert_episodes_score_higher_than_random_episodes(trained):
    # the same three reset seeds (scenes) at epsilon 0 and 1, none of them in the training data
    episodes = collect(TASK, 3, seed=100, max_steps=STEPS, epsilons=(0.0, 1.0), progress=False)
    scorer = RewardScorer(trained, ScoreConfig(task=TASK, standardize=False, seed=0))
    means = {(e.epsilon, e.seed): float(scorer.score_episode(e.frames).raw.mean()) for e in episodes}
    expert = np.array([means[(0.0, s)] for s in (100, 101, 102)])
    random = np.array([means[(1.0, s)] for s in (100, 101, 102)])
    assert all(e.success for e in episodes if e.epsilon == 0.0)
    assert expert.mean() > random.mean() + 2.0, (expert, random)  # nats per frame
    assert (expert > random).all(), (expert, random)
