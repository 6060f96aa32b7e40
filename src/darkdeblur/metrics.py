"""PSNR and SSIM per image (scikit-image), under two named evaluation protocols.

``full``  : full resolution, uint8, PSNR peak 255, SSIM with data_range 255 (scikit-image's
            default 7x7 uniform window). What most later deblurring papers report.
``paper`` : the paper authors' test script: GOPRO frames halved with bicubic resizing when the
            set is not already halved (:func:`darkdeblur.pixels.halve_large`), every image resized to 360x360, PSNR peak 255 on floats,
            SSIM with gaussian_weights=True, use_sample_covariance=False on [0, 1] floats.
            Their old scikit-image assumed a data range of 2 for floats, which inflates SSIM;
            ``ssim`` here uses the correct range 1 and ``ssim_range2`` reproduces theirs.
"""
from __future__ import annotations

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from .pixels import halve_large, resize

PROTOCOLS = ("full", "paper")
PAPER_SIZE = 360


def psnr(restored: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """PSNR in dB; infinite for identical images.

    >>> psnr(np.full((4, 4), 0.5), np.full((4, 4), 0.6), data_range=1.0)  # doctest: +ELLIPSIS
    20.0...
    """
    restored = np.asarray(restored, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if restored.shape != reference.shape:
        raise ValueError(f"psnr: shapes differ {restored.shape} vs {reference.shape}")
    if np.array_equal(restored, reference):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, restored, data_range=data_range))


def model_input(image: np.ndarray, protocol: str) -> np.ndarray:
    """What a method is given under ``protocol``: the paper's GOPRO test frames were halved
    (bicubic) before the network saw them; ``full`` passes images through unchanged."""
    return halve_large(image) if protocol == "paper" else image


def paper_view(image: np.ndarray) -> np.ndarray:
    """The paper's scoring view of a uint8 image the method was given: resized to 360x360.

    Pass images already through :func:`model_input` (halving again here would halve frames
    larger than GOPRO's twice).
    """
    return resize(image, (PAPER_SIZE, PAPER_SIZE))


def score(restored: np.ndarray, sharp: np.ndarray, protocol: str) -> dict[str, float]:
    """Score one uint8 (H, W, 3) image against its ground truth under ``protocol``.

    Under ``paper`` both images are those the method was given (see :func:`model_input`).
    """
    if restored.shape != sharp.shape:
        raise ValueError(f"restored {restored.shape} and sharp {sharp.shape} differ in shape")
    if restored.dtype != np.uint8 or sharp.dtype != np.uint8:
        raise ValueError("score expects uint8 images")
    if protocol == "full":
        return {"psnr": psnr(restored, sharp, 255.0),
                "ssim": float(structural_similarity(sharp, restored, data_range=255,
                                                    channel_axis=-1))}
    if protocol == "paper":
        a = paper_view(restored).astype(np.float64) / 255.0
        b = paper_view(sharp).astype(np.float64) / 255.0
        kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                      channel_axis=-1)
        return {"psnr": psnr(a, b, 1.0),
                "ssim": float(structural_similarity(b, a, data_range=1.0, **kwargs)),
                "ssim_range2": float(structural_similarity(b, a, data_range=2.0, **kwargs))}
    raise ValueError(f"unknown protocol {protocol!r}; choose {', '.join(PROTOCOLS)}")
