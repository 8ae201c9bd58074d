import numpy as np
import pytest

from diffusion_reward.errors import UserError
from diffusion_reward.reward.combine import RewardMix


def test_eq5_paper_defaults():
    r = RewardMix().combine(diffusion=[2.0, -1.0], sparse=[0.0, 1.0], rnd=[0.4, 0.2])
    np.testing.assert_allclose(r, [0.05 * 2.0 + 0.95 * 0.4, 0.05 * -1.0 + 0.95 * 0.2 + 1.0], rtol=1e-6)
    assert r.dtype == np.float32


def test_without_rnd_keeps_diffusion_scale():
    r = RewardMix(alpha=0.95, beta=2.0).combine(diffusion=[1.0, 3.0], sparse=[0.0, 1.0])
    np.testing.assert_allclose(r, [0.05, 0.15 + 2.0], rtol=1e-6)


def test_pen_like_alpha_zero_uses_full_diffusion_term():
    r = RewardMix(alpha=0.0).combine(diffusion=[1.5], sparse=[0.0], rnd=[100.0])
    np.testing.assert_allclose(r, [1.5])


def test_bad_inputs():
    with pytest.raises(UserError):
        RewardMix(alpha=1.5)
    with pytest.raises(UserError):
        RewardMix().combine(diffusion=[1.0, 2.0], sparse=[1.0])
