"""super-gradients' photometric keypoint transforms: brightness/contrast, channel order, HSV (the boxes and
keypoints stay as they are). Pure functions; the random draws come from the caller's ``torch.Generator``.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from curricurun.data.pose.keypoints import PoseSample


def adjust_brightness_contrast(sample: PoseSample, brightness: float, contrast: float) -> PoseSample:
    """``(x − m)·contrast + m·brightness`` with ``m`` the per-channel mean, clamped to 0..255.

    SG keypoints_brightness_contrast.py: its docstring says ``+ m + brightness`` but the code multiplies the
    mean, as here. Keypoints and boxes are untouched.
    """
    mean = sample.image.mean(dim=(-2, -1), keepdim=True)
    image = ((sample.image - mean) * contrast + mean * brightness).clamp(0, 255)
    return replace(sample, image=image)


def reverse_channels(sample: PoseSample) -> PoseSample:
    """RGB ↔ BGR (SG keypoints_reverse_image_channels.py); teaches the model to ignore the channel order."""
    return replace(sample, image=sample.image.flip(0))


def shift_hsv(sample: PoseSample, hue: float, saturation: float, value: float) -> PoseSample:
    """Add ``hue`` to H (cv2's 8-bit scale: 180 units = 360°, wrapping) and ``saturation`` / ``value`` to S / V
    (0..255, clamped), the update of SG's ``augment_hsv`` (training/transforms/transforms.py).

    SG runs it on its BGR image with BGR↔HSV conversions; on our RGB image the RGB conversions give the same
    colours. The conversion is cv2's (V = max, S = 255·(max − min)/max, H from the dominant channel) without
    its rounding to integers.
    """
    image = sample.image
    if image.shape[0] != 3:
        raise ValueError(f"HSV augmentation needs 3 channels, got {image.shape[0]}")
    red, green, blue = image.unbind(0)
    maximum, minimum = image.amax(0), image.amin(0)
    delta = maximum - minimum
    safe_delta = torch.where(delta > 0, delta, torch.ones_like(delta))
    degrees = torch.where(
        maximum == red,
        60 * (green - blue) / safe_delta,
        torch.where(maximum == green, 120 + 60 * (blue - red) / safe_delta, 240 + 60 * (red - green) / safe_delta),
    )
    degrees = torch.where(delta > 0, degrees, torch.zeros_like(degrees))
    sat = 255 * delta / torch.where(maximum > 0, maximum, torch.ones_like(maximum))
    new_hue = (degrees / 2 + hue) % 180
    new_sat = (sat + saturation).clamp(0, 255)
    new_value = (maximum + value).clamp(0, 255)
    # HSV → RGB: channel n (5: R, 3: G, 1: B) is V − chroma·clamp(min(k, 4 − k), 0, 1), k = (n + H/60°) mod 6.
    chroma = new_value * new_sat / 255
    sixths = new_hue / 30
    channels = []
    for n in (5, 3, 1):
        k = (n + sixths) % 6
        channels.append(new_value - chroma * torch.minimum(k, 4 - k).clamp(0, 1))
    return replace(sample, image=torch.stack(channels).clamp(0, 255))


def draw_hsv_shift(gains: tuple[float, float, float], generator: torch.Generator) -> tuple[int, int, int]:
    """SG's draw: ``uniform(−1, 1)·gain`` per channel, each kept with probability ½, truncated to an integer."""
    uniform = torch.rand(3, generator=generator, dtype=torch.float64) * 2 - 1
    kept = torch.randint(0, 2, (3,), generator=generator)
    shift = uniform * torch.tensor(gains, dtype=torch.float64) * kept
    hue, saturation, value = (int(x) for x in shift.tolist())  # int() truncates toward 0, like astype(int16)
    return hue, saturation, value


def augment_hsv(sample: PoseSample, gains: tuple[float, float, float], generator: torch.Generator) -> PoseSample:
    """A random HSV shift (SG keypoints_hsv.py): :func:`draw_hsv_shift` then :func:`shift_hsv`."""
    return shift_hsv(sample, *draw_hsv_shift(gains, generator))
