import torch

from diffusion_reward.models.rnd import RND, RNDConfig


def _frames(n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 64, 64), generator=g, dtype=torch.uint8)


def test_shapes_match_upstream():
    rnd = RND()
    assert rnd.target[-1].in_features == 3136 and rnd.target[-1].out_features == 512
    linears = [m for m in rnd.predictor if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3136, 512), (512, 512), (512, 512)]
    convs = [(m.out_channels, m.kernel_size, m.stride) for m in rnd.target.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs == [(32, (6, 6), (3, 3)), (64, (4, 4), (2, 2)), (64, (3, 3), (1, 1))]
    bonus = rnd.bonus(_frames(5, 0))
    assert bonus.shape == (5,) and bool((bonus > 0).all())
    assert not any(p.requires_grad for p in rnd.target.parameters())


def test_bonus_decreases_on_seen_observations_only():
    rnd = RND(RNDConfig(lr=1e-3))
    seen, unseen = _frames(16, 1), _frames(16, 2)
    before_seen = rnd.bonus(seen).mean()
    for _ in range(30):
        rnd.update(seen)
    after_seen, after_unseen = rnd.bonus(seen).mean(), rnd.bonus(unseen).mean()
    assert after_seen < 0.5 * before_seen
    assert after_unseen > after_seen  # novelty: unseen frames keep a larger bonus


def test_same_seed_same_weights_and_global_rng_untouched():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = RND(RNDConfig(seed=3)), RND(RNDConfig(seed=3)), RND(RNDConfig(seed=4))
    assert torch.equal(torch.rand(1), expected)
    x = _frames(2, 0)
    assert torch.equal(a.bonus(x), b.bonus(x))
    assert not torch.equal(a.bonus(x), c.bonus(x))
