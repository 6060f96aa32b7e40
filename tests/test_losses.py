import pytest
import torch

from darkdeblur.config import LossConfig
from darkdeblur.dark_channel import dark_channel
from darkdeblur.losses import dark_channel_loss, generator_loss
from darkdeblur.models.vgg import VGG19Conv33


def test_dark_channel_of_a_constant_image_is_that_constant():
    out = dark_channel(torch.full((2, 3, 20, 20), 0.37))
    torch.testing.assert_close(out, torch.full((2, 1, 20, 20), 0.37))


def test_the_dark_channel_patch_has_one_default():
    import inspect
    patch = LossConfig().dark_patch
    for function in (dark_channel, dark_channel_loss):
        assert inspect.signature(function).parameters["patch"].default == patch == 15, function


def test_dark_channel_matches_a_hand_computation():
    image = torch.ones(1, 3, 5, 5)
    image[0, 1, 2, 2] = 0.2   # one dark green pixel in the centre
    image[0, 0, 0, 4] = 0.5   # one dimmer red pixel in the top-right corner
    out = dark_channel(image, patch=3)[0, 0]
    expected = torch.ones(5, 5)
    expected[1:4, 1:4] = 0.2          # the 3x3 neighbourhood of the centre sees 0.2
    expected[0:2, 3:5] = torch.minimum(expected[0:2, 3:5], torch.tensor(0.5))
    torch.testing.assert_close(out, expected)


def test_dark_channel_rejects_wrong_shapes():
    with pytest.raises(ValueError, match=r"\(2, 1, 8, 8\)"):
        dark_channel(torch.rand(2, 1, 8, 8))


def test_dark_channel_gradcheck():
    x = torch.rand(1, 3, 6, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: dark_channel(t, 3), (x,))


def test_dark_channel_loss_is_zero_for_equal_images_and_positive_otherwise():
    x = torch.rand(2, 3, 24, 24)
    assert dark_channel_loss(x, x).item() == 0
    assert dark_channel_loss(x * 0.5, x).item() > 0


def test_generator_loss_weights_each_term():
    torch.manual_seed(0)
    restored, sharp = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    cfg = LossConfig(lambda_adv=1.0, lambda_l1=100.0, lambda_dark=250.0)
    logits = torch.zeros(2)
    terms = generator_loss(cfg, restored, sharp, logits)
    expected = terms["g_adv"] + 100 * terms["l1"] + 250 * terms["dark"]
    torch.testing.assert_close(terms["g_loss"], expected)
    torch.testing.assert_close(terms["g_adv"], torch.log(torch.tensor(2.0)))  # BCE(0 logit, 1)
    dc0 = generator_loss(LossConfig(lambda_dark=0.0), restored, sharp, logits)
    assert "dark" not in dc0


def test_perceptual_term_uses_vgg_features():
    vgg = VGG19Conv33()
    restored, sharp = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    terms = generator_loss(LossConfig(lambda_perceptual=1.0, lambda_dark=0.0), restored, sharp, None, vgg)
    assert terms["perceptual"].item() > 0
    assert vgg(restored).shape == (1, 256, 8, 8)
    with pytest.raises(ValueError, match="VGG-19"):
        generator_loss(LossConfig(lambda_perceptual=1.0), restored, sharp, None, None)


def test_vgg_weights_load_strictly_from_a_torchvision_state_dict(tmp_path):
    source = VGG19Conv33()
    state = {f"features.{k}": v for k, v in source.features.state_dict().items()}
    state["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files hold more than we need
    torch.save(state, tmp_path / "vgg19.pth")
    target = VGG19Conv33()
    target.load_torchvision_weights(tmp_path / "vgg19.pth")
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(target(x), source(x))
    with pytest.raises(FileNotFoundError, match="VGG-19 weights not found"):
        target.load_torchvision_weights(tmp_path / "missing.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a torchvision vgg19"):
        target.load_torchvision_weights(tmp_path / "bad.pth")
