"""VGG-19 features up to conv3_3 for the perceptual loss, defined here (no torchvision needed).

Weights come from a user-supplied file in torchvision's ``vgg19`` state-dict format
(``features.N.weight`` / ``features.N.bias``), .pth or .safetensors; nothing is downloaded.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

# torchvision's vgg19 "features" indices 0..14: conv1_1 .. conv3_3 (ReLU after conv3_3 excluded,
# as DeblurGAN compares the conv3_3 activations).
_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256]
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
WEIGHTS_ENV = "DARKDEBLUR_VGG19_WEIGHTS"


class VGG19Conv33(nn.Module):
    """(B, 3, H, W) in [0, 1] -> conv3_3 activations (B, 256, H/4, W/4)."""

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 3
        for item in _LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(in_ch, item, 3, padding=1), nn.ReLU(inplace=False)]
                in_ch = item
        self.features = nn.Sequential(*layers[:-1])  # drop the ReLU after conv3_3
        self.register_buffer("mean", torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1))
        self.requires_grad_(False)
        self.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.features((images - self.mean) / self.std)

    def load_torchvision_weights(self, path: str | os.PathLike) -> None:
        """Load the conv1_1..conv3_3 tensors from a torchvision vgg19 state dict, strictly."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(
                f"{path}: VGG-19 weights not found; the perceptual loss needs torchvision's "
                f"vgg19 weights file (set --vgg-weights or {WEIGHTS_ENV})")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        wanted = {k for k in self.features.state_dict()}
        sub = {k.removeprefix("features."): v for k, v in state.items()
               if k.startswith("features.") and k.removeprefix("features.") in wanted}
        missing = wanted - set(sub)
        if missing:
            raise ValueError(f"{path}: not a torchvision vgg19 state dict (missing {sorted(missing)[:3]})")
        self.features.load_state_dict(sub, strict=True)
