"""PSNR and SSIM per image (scikit-image), under three named evaluation protocols.

``full``        : full resolution, uint8, PSNR peak 255, SSIM with data_range 255
                  (scikit-image's default 7x7 uniform window). What most later deblurring
                  papers report.
``paper``       : the paper authors' test script, in its order. GOPRO frames are halved
                  (bicubic) when the set is not already halved (:func:`darkdeblur.pixels.halve_large`),
                  the halved blurred frame is resized to 360x360 (bilinear) *before* the method
                  runs, and the method's output is scored against the sharp frame halved and
                  resized the same way, without rounding either to 8 bits. PSNR peak 1 on
                  [0, 1] floats (= peak 255), SSIM with gaussian_weights=True,
                  use_sample_covariance=False. Their old scikit-image assumed a data range of 2
                  for floats, which inflates SSIM; ``ssim`` here uses the correct range 1 and
                  ``ssim_range2`` reproduces theirs.
                  Two small differences remain: the method is given the resized frame rounded
                  to uint8 (every restorer here takes 8-bit images), and its output is rounded
                  too unless the restorer returns float images.
``paper-after`` : the same halving and metrics, but the method runs on the halved frame
                  (640x360 for GOPRO) and output and sharp frame are resized to 360x360
                  (bicubic, uint8) afterwards: this project's earlier reading of the script.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .pixels import halve_large, resize

PROTOCOLS = ("full", "paper", "paper-after")
PAPER_SIZE = 360


def psnr(restored: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    """PSNR in dB; infinite for identical images.

    >>> psnr(np.full((4, 4), 0.5), np.full((4, 4), 0.6), data_range=1.0)  # doctest: +ELLIPSIS
    20.0...
    """
    from skimage.metrics import peak_signal_noise_ratio
    restored = np.asarray(restored, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if restored.shape != reference.shape:
        raise ValueError(f"psnr: shapes differ {restored.shape} vs {reference.shape}")
    if np.array_equal(restored, reference):
        return float("inf")
    return float(peak_signal_noise_ratio(reference, restored, data_range=data_range))


def resize_bilinear(rgb: np.ndarray, size: int = PAPER_SIZE) -> np.ndarray:
    """uint8 (H, W, 3) -> float64 (size, size, 3) in [0, 1], bilinear, no antialiasing, unrounded.

    Half-pixel centres (output pixel i samples input position (i + 0.5) * H / size - 0.5),
    as ``tf.image.resize`` does.

    >>> resize_bilinear(np.full((4, 6, 3), 51, np.uint8), 2)[0, 0]
    array([0.2, 0.2, 0.2])
    """
    image = torch.from_numpy(rgb.astype(np.float64) / 255.0).permute(2, 0, 1)[None]
    out = F.interpolate(image, size=(size, size), mode="bilinear", align_corners=False,
                        antialias=False)
    return out[0].permute(1, 2, 0).numpy()


def model_input(image: np.ndarray, protocol: str) -> np.ndarray:
    """The uint8 image a method is given under ``protocol``.

    ``full``: unchanged. ``paper-after``: GOPRO-sized frames halved (bicubic). ``paper``: halved,
    then resized to 360x360 (bilinear) and rounded to uint8.
    """
    _check_protocol(protocol)
    if protocol == "full":
        return image
    halved = halve_large(image)
    if protocol == "paper-after":
        return halved
    return np.clip(resize_bilinear(halved) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def reference(sharp: np.ndarray, protocol: str) -> np.ndarray:
    """What a method's output is compared with under ``protocol``, from a uint8 sharp image.

    ``paper``: the halved sharp frame resized to 360x360 (bilinear), float64 in [0, 1], not
    rounded. The others: the same uint8 image :func:`model_input` gives.
    """
    if protocol == "paper":
        return resize_bilinear(halve_large(sharp))
    return model_input(sharp, protocol)


def paper_view(image: np.ndarray) -> np.ndarray:
    """``paper-after``'s scoring view of a uint8 image the method was given: bicubic 360x360.

    Pass images already through :func:`model_input` (halving again here would halve frames
    larger than GOPRO's twice).
    """
    return resize(image, (PAPER_SIZE, PAPER_SIZE))


def _unit_float(image: np.ndarray) -> np.ndarray:
    """uint8 -> float64 / 255; float images are taken to be in [0, 1] already and clipped."""
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(image.astype(np.float64), 0.0, 1.0)
    raise ValueError(f"expected uint8 or float images, got {image.dtype}")


def _paper_metrics(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """The authors' metrics on float (H, W, 3) images in [0, 1]: ``a`` restored, ``b`` sharp."""
    from skimage.metrics import structural_similarity
    kwargs = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, channel_axis=-1)
    return {"psnr": psnr(a, b, 1.0),
            "ssim": float(structural_similarity(b, a, data_range=1.0, **kwargs)),
            "ssim_range2": float(structural_similarity(b, a, data_range=2.0, **kwargs))}


def score(restored: np.ndarray, sharp: np.ndarray, protocol: str) -> dict[str, float]:
    """Score one (H, W, 3) image against its ground truth under ``protocol``.

    ``sharp`` is what :func:`reference` returns for the protocol; ``restored`` is the method's
    output for :func:`model_input`'s image. ``full`` and ``paper-after`` take uint8 images;
    ``paper`` also takes float images in [0, 1] (unrounded outputs and references).
    """
    _check_protocol(protocol)
    if restored.shape != sharp.shape:
        raise ValueError(f"restored {restored.shape} and sharp {sharp.shape} differ in shape")
    if protocol == "paper":
        return _paper_metrics(_unit_float(restored), _unit_float(sharp))
    if restored.dtype != np.uint8 or sharp.dtype != np.uint8:
        raise ValueError(f"score under {protocol!r} expects uint8 images")
    if protocol == "full":
        from skimage.metrics import structural_similarity
        return {"psnr": psnr(restored, sharp, 255.0),
                "ssim": float(structural_similarity(sharp, restored, data_range=255,
                                                    channel_axis=-1))}
    return _paper_metrics(paper_view(restored) / 255.0, paper_view(sharp) / 255.0)


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose {', '.join(PROTOCOLS)}")
