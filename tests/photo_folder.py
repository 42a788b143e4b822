"""Real photographs as an ImageNet-style JPEG folder, built at run time from the photos scikit-image ships.

``write_photo_folder(root, count)`` writes ``root/<split>/<class>/<k>.JPEG``: crops of scikit-image's colour
photos at ImageNet-typical sizes (500×375 landscape, some 375×500 portrait; ImageNet's median is about 500×375),
at a random scale and position, JPEG quality 90 (libjpeg 4:2:0). The class is the source photo, so a model can
learn something. Used by tests/data (pipelines vs their references) and bench/loader_throughput.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "colorwheel")


def photos() -> dict[str, np.ndarray]:
    """scikit-image's colour photos (uint8 ``[H, W, 3]``) by name, plus the two views of the motorcycle pair."""
    from skimage import data

    found = {name: getattr(data, name)() for name in PHOTOS}
    left, right, _ = data.stereo_motorcycle()
    found["motorcycle_left"], found["motorcycle_right"] = left, right
    return {name: np.ascontiguousarray(image[..., :3]) for name, image in found.items()}


def write_photo_folder(
    root: Path, count: int, *, classes: int = 4, splits: dict[str, float] | None = None, seed: int = 0
) -> dict[str, list[Path]]:
    """Write ``count`` JPEGs per split fraction (default all ``train``) over ``classes`` source photos."""
    rng = np.random.default_rng(seed)
    sources = list(photos().items())[:classes]
    written: dict[str, list[Path]] = {}
    for split, fraction in (splits or {"train": 1.0}).items():
        files = written.setdefault(split, [])
        for k in range(max(1, round(count * fraction))):
            name, photo = sources[k % len(sources)]
            size = (375, 500) if rng.random() < 0.2 else (500, 375)
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"{split}_{k:05d}.JPEG"
            _random_view(photo, size, rng).save(path, quality=90)
            files.append(path)
    return written


def _random_view(photo: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """A ``size = (width, height)`` crop at a random zoom (1-1.6× the smallest covering scale) and position."""
    height, width = photo.shape[:2]
    cover = max(size[0] / width, size[1] / height)
    zoom = cover * rng.uniform(1.0, 1.6)
    scaled = (max(size[0], round(width * zoom)), max(size[1], round(height * zoom)))
    picture = Image.fromarray(photo).resize(scaled, Image.Resampling.BICUBIC)
    left = int(rng.integers(0, scaled[0] - size[0] + 1))
    top = int(rng.integers(0, scaled[1] - size[1] + 1))
    picture = picture.crop((left, top, left + size[0], top + size[1]))
    return picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else picture
