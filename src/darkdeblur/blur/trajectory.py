"""Random camera-shake trajectories and the motion-blur kernels they produce.

The model follows Boracchi and Foi (2012), "Modeling the performance of image restoration from motion blur", as
used by DeblurGAN to synthesise blurred training pairs: the camera position is a 2-D random walk whose velocity has
a constant speed and whose direction is perturbed by Gaussian shake, pulled back towards the start by a centripetal
term, and occasionally reversed by an impulsive "big shake". The blur kernel is the time spent at each position,
i.e. the trajectory splatted onto a pixel grid.

Positions are complex numbers: the real part is x (columns, growing rightwards), the imaginary part is y (rows,
growing downwards), both in pixels.

Unlike DeblurGAN's reference code, kernels are never min-max stretched: a kernel sums to 1 so that blurring keeps
an image's mean brightness.
"""

from __future__ import annotations

import numpy as np

# Exposure fractions from the DeblurGAN recipe: the kernel integrates only the first part of the trajectory.
EXPOSURES = (1 / 100, 1 / 10, 1 / 2, 1.0)
# DeblurGAN's own kernels: 60 px paths on a 64 px canvas, with these fixed shakiness values.
DEBLURGAN_LENGTH = 60.0
DEBLURGAN_KERNEL_SIZE = 65
DEBLURGAN_ANXIETY = (0.01, 0.009, 0.008, 0.007, 0.005, 0.003)
# The streak recipe: full-exposure paths of 8 to 40 px in a 41 px kernel. Its shakiness is small and
# fixed: the trajectory's own 0.1 * U(0, 1) curls most paths into scribbles a few pixels across
# (nearly sharp kernels), while a value like DeblurGAN's generation script's gives visible streaks.
STREAK_KERNEL_SIZE = 41
STREAK_MIN_LENGTH = 8.0
STREAK_MAX_LENGTH = 40.0
STREAK_ANXIETY = 0.005


def random_trajectory(
    rng: np.random.Generator,
    canvas: int = 64,
    length: float = 60.0,
    steps: int = 2000,
    anxiety: float | None = None,
) -> np.ndarray:
    """Sample one camera-shake trajectory.

    Args:
        rng: the only source of randomness.
        canvas: side of the square canvas (px); the trajectory's bounding box is centred on it. A trajectory longer
            than the canvas may leave it; nothing is clipped.
        length: total path length in px (sum of step lengths), exactly.
        steps: number of positions sampled over the exposure.
        anxiety: how shaky the camera is; drawn as 0.1 * U(0, 1) when None. 0 gives a straight line.

    Returns:
        complex128 array (steps,) of positions in px on the canvas.
    """
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps}")
    if length <= 0:
        raise ValueError(f"length must be > 0, got {length}")
    if anxiety is None:
        anxiety = 0.1 * rng.uniform()
    if anxiety < 0:
        raise ValueError(f"anxiety must be >= 0, got {anxiety}")

    # Per-trajectory character of the shake (ranges from the recipe).
    centripetal = 0.7 * rng.uniform()
    big_shake_prob = 0.2 * rng.uniform()
    gaussian_shake = 10.0 * rng.uniform()
    angle = 2 * np.pi * rng.uniform()

    # Constant speed: every step has the same length, so the path length is exactly `length`.
    step_length = length / (steps - 1)
    # Draw all random numbers up front; the loop below is a recurrence and cannot be vectorised.
    reversal_draws = rng.uniform(size=steps - 1)
    reversal_jitter = rng.uniform(size=steps - 1) - 0.5
    shake = rng.standard_normal(steps - 1) + 1j * rng.standard_normal(steps - 1)

    positions = np.zeros(steps, dtype=np.complex128)
    velocity = np.exp(1j * angle) * step_length
    for t in range(steps - 1):
        impulse = 0.0
        if reversal_draws[t] < big_shake_prob * anxiety:
            # Abrupt shake: push hard roughly opposite to the current motion (within +-0.5 rad of a reversal).
            impulse = 2 * velocity * np.exp(1j * (np.pi + reversal_jitter[t]))
        # Gaussian shake perturbs the direction; the centripetal term pulls back towards the start so the
        # trajectory stays compact instead of drifting like a free random walk.
        drift = anxiety * (gaussian_shake * shake[t] - centripetal * positions[t]) * step_length
        velocity = velocity + impulse + drift
        speed = abs(velocity)
        # Keep the speed constant; only the direction carries the randomness.
        velocity = velocity / speed * step_length if speed > 0 else np.exp(1j * angle) * step_length
        positions[t + 1] = positions[t] + velocity

    # Centre the bounding box on the canvas.
    box_centre = complex(
        (positions.real.min() + positions.real.max()) / 2, (positions.imag.min() + positions.imag.max()) / 2
    )
    return positions - box_centre + complex(canvas / 2, canvas / 2)


def _exposed(trajectory: np.ndarray, exposure: float) -> np.ndarray:
    """The first `exposure` fraction of a trajectory (at least one position)."""
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    count = max(1, int(round(exposure * len(trajectory))))
    return np.asarray(trajectory, dtype=np.complex128)[:count]


def trajectory_to_kernel(trajectory: np.ndarray, size: int, exposure: float = 1.0) -> np.ndarray:
    """Splat the exposed part of a trajectory bilinearly onto a (size, size) grid.

    The positions' centre of mass is placed on the kernel centre ((size - 1) / 2, (size - 1) / 2), so blurring with
    the kernel does not shift the image. Bilinear splatting keeps each sample's centre of mass, so the kernel's
    centre of mass is the kernel centre exactly as long as nothing falls off the grid. Mass that does fall off is
    dropped before normalising (`random_motion_kernel` scales trajectories so that none does).

    Args:
        trajectory: complex (N,) positions in px (real = x, imag = y); the absolute offset is irrelevant.
        size: kernel side in px.
        exposure: fraction in (0, 1] of the trajectory (from its start) that the shutter sees.

    Returns:
        float32 (size, size), non-negative, sums to 1.
    """
    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    points = _exposed(trajectory, exposure)
    centre = (size - 1) / 2
    points = points - points.mean() + complex(centre, centre)

    x, y = points.real, points.imag
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    kernel = np.zeros((size, size), dtype=np.float64)
    # Each sample spreads unit mass over its four neighbouring pixels.
    for dy, dx, weight in (
        (0, 0, (1 - fy) * (1 - fx)),
        (0, 1, (1 - fy) * fx),
        (1, 0, fy * (1 - fx)),
        (1, 1, fy * fx),
    ):
        rows, cols = y0 + dy, x0 + dx
        inside = (rows >= 0) & (rows < size) & (cols >= 0) & (cols < size)
        np.add.at(kernel, (rows[inside], cols[inside]), weight[inside])

    total = kernel.sum()
    if total <= 0:
        raise ValueError(f"trajectory falls entirely outside a ({size}, {size}) kernel")
    return (kernel / total).astype(np.float32)


def random_motion_kernel(
    rng: np.random.Generator,
    size: int = STREAK_KERNEL_SIZE,
    max_length: float = STREAK_MAX_LENGTH,
    min_length: float = STREAK_MIN_LENGTH,
    exposure: float | None = None,
    anxiety: float | None = None,
) -> np.ndarray:
    """Sample one motion-blur kernel.

    The trajectory's path length is drawn from U(min_length, max_length) px. The kernel integrates its first
    `exposure` fraction, so the path it shows is exposure * length long. If that part would not fit in the kernel
    (with a 1 px margin for bilinear splatting), the trajectory is shrunk about its centre of mass until it does,
    so no mass is cut off.

    With the recipe's anxiety (0.1 * U) most paths are tangled scribbles only a few px across (a 40 px path
    typically has an RMS radius of about 1.5 px); a small fixed anxiety (0.001-0.01) gives longer, smoother
    streaks.

    Args:
        rng: the only source of randomness.
        size: odd kernel side in px.
        max_length, min_length: range of the trajectory's path length in px.
        exposure: fraction of the trajectory exposed; drawn from EXPOSURES (1/100, 1/10, 1/2, 1) when None, as in
            DeblurGAN. Short exposures give nearly sharp kernels; pass 1.0 to always get the full streak.
        anxiety: shakiness passed to `random_trajectory` (0.1 * U(0, 1) when None).

    Returns:
        float32 (size, size), non-negative, sums to 1, centre of mass at the centre pixel.
    """
    if size < 3 or size % 2 == 0:
        raise ValueError(f"size must be odd and >= 3, got {size}")
    if not 0 < min_length <= max_length:
        raise ValueError(f"need 0 < min_length <= max_length, got min_length={min_length}, max_length={max_length}")
    length = rng.uniform(min_length, max_length)
    if exposure is None:
        exposure = float(rng.choice(EXPOSURES))
    trajectory = random_trajectory(rng, length=length, anxiety=anxiety)

    exposed = _exposed(trajectory, exposure)
    offsets = exposed - exposed.mean()
    reach = max(np.abs(offsets.real).max(), np.abs(offsets.imag).max())
    limit = (size - 1) / 2 - 1
    if reach > limit:
        # Uniform scaling about any point keeps the shape; trajectory_to_kernel re-centres anyway.
        trajectory = trajectory * (limit / reach)
    return trajectory_to_kernel(trajectory, size, exposure)


def deblurgan_motion_kernel(rng: np.random.Generator, size: int = DEBLURGAN_KERNEL_SIZE) -> np.ndarray:
    """Sample one kernel with DeblurGAN's recipe: a 60 px trajectory on a 64 px canvas.

    The shakiness is one of DeblurGAN's generation script's fixed values (0.003 to 0.01) and the
    shutter sees 1/100, 1/10, 1/2 or all of the path (`EXPOSURES`, equally likely), so about a
    quarter of the kernels are nearly sharp. (DeblurGAN's generation script,
    ``motion_blur/blur_image.py``, exists in two versions: one draws the shakiness from these six
    values and the exposure from 1/10, 1/2 and 1 only, the other from eight values down to 0.001
    and all four exposures, the shortest being 1/1000. This recipe follows the six values and the
    four exposures of the reference-code facts.) Differences from DeblurGAN's code: the kernel is
    65 px (odd, so it has a centre pixel), a path that would not fit is shrunk to fit, and kernels are
    never min-max stretched.

    Returns:
        float32 (size, size), non-negative, sums to 1.
    """
    return random_motion_kernel(rng, size=size, max_length=DEBLURGAN_LENGTH, min_length=DEBLURGAN_LENGTH,
                                exposure=float(rng.choice(EXPOSURES)),
                                anxiety=float(rng.choice(DEBLURGAN_ANXIETY)))


def kernel_bank(seed: int, count: int, size: int = STREAK_KERNEL_SIZE, recipe: str = "streak", **kwargs) -> np.ndarray:
    """`count` kernels, identical for identical arguments.

    Args:
        seed: seeds a fresh numpy Generator, so the bank does not depend on any other randomness.
        count: number of kernels.
        size: kernel side.
        recipe: "streak" (`random_motion_kernel`, which gets the other keyword arguments) or
            "deblurgan" (`deblurgan_motion_kernel`, which takes none).

    Returns:
        float32 (count, size, size).
    """
    rng = np.random.default_rng(seed)
    if recipe == "streak":
        kernels = [random_motion_kernel(rng, size=size, **kwargs) for _ in range(count)]
    elif recipe == "deblurgan":
        kernels = [deblurgan_motion_kernel(rng, size) for _ in range(count)]
    else:
        raise ValueError(f"unknown kernel recipe {recipe!r}; choose streak or deblurgan")
    return np.stack(kernels).astype(np.float32) if kernels else np.zeros((0, size, size), np.float32)
