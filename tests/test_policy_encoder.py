"""DrQ random shift: a real integer translation with replicate padding, in training mode only."""
import torch

from diffusion_reward.offline.encoders import DrQPixelEncoderFactory, random_shift


def test_random_shift_is_an_integer_crop_of_the_replicate_padded_image():
    torch.manual_seed(0)
    x = torch.rand(16, 3, 8, 8)
    shifted = random_shift(x, pad=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="replicate")
    crops = {(dy, dx): padded[:, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)}
    for i in range(16):
        matches = [k for k, c in crops.items() if torch.allclose(shifted[i], c[i], atol=1e-5)]
        assert matches, f"sample {i} is not an integer shift"
    assert not torch.allclose(shifted, x)  # with 25 possible offsets, 16 samples are not all unshifted


def test_shift_only_in_training_mode_for_image_and_image_state_encoders():
    torch.manual_seed(0)
    factory = DrQPixelEncoderFactory(feature_size=32)
    image, state = torch.rand(4, 6, 64, 64), torch.rand(4, 5)
    for encoder, x in ((factory.create((6, 64, 64)), image),
                       (factory.create([(6, 64, 64), (5,)]), [image, state])):
        encoder.eval()
        assert torch.equal(encoder(x), encoder(x))
        encoder.train()
        assert not torch.equal(encoder(x), encoder(x))
        assert encoder(x).shape == (4, 32)
    with_action = factory.create_with_action([(6, 64, 64), (5,)], action_size=4)
    assert with_action([image, state], torch.rand(4, 4)).shape == (4, 32)
