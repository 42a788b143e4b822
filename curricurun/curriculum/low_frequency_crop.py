"""EfficientTrain / EfficientTrain++ low-frequency cropping: train early stages on the low frequencies only.

The bandwidth schedules, the stage indexing and both implementations (the ICCV FFT crop and ET++'s Lanczos
down-sampling) are described in docs/references.md. The stage helpers here
(:func:`progress_fraction`, :func:`stage_index`) are shared with ``randaugment_ramp``, whose magnitude steps
are indexed like the bandwidth stages.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, model_validator

from curricurun.curriculum.base import Curriculum, CurriculumParams, Progress, StageState
from curricurun.recipe.fields import Int

if TYPE_CHECKING:
    import torch
    from PIL import Image

Axis = Literal["compute", "epochs", "steps"]

# Bandwidth B per stage at base resolution 224 (``_ET_pp_main_*.py`` L13-17; ``ET_training.py`` L51).
# ET++ stages are 10 slices of 10% of the compute budget each; ICCV ET stages are 5 equal epoch segments.
SCHEDULES: dict[str, tuple[int, ...]] = {
    "et++": (96, 96, 160, 160, 160, 160, 224, 224, 224, 224),  # _ET_pp_main_{res50,swinT,cswin*}.py
    "et++_deit": (96, 96, 160, 160, 160, 160, 192, 192, 224, 224),  # _ET_pp_main_deitS.py L13-18
    "et++_convnext": (160, 160, 160, 160, 160, 160, 224, 224, 224, 224),  # _ET_pp_main_convnext*.py
    "iccv": (160, 160, 160, 192, 224),  # ET@552b73c:ET_training.py L51
}
SCHEDULE_AXIS: dict[str, Axis] = {
    "et++": "compute",
    "et++_deit": "compute",
    "et++_convnext": "compute",
    "iccv": "epochs",
}
TABLE_BASE = 224


def progress_fraction(progress: Progress, axis: Axis) -> float:
    """How far training stands on ``axis``, as a fraction of the whole run (0 at the start, 1 at the end).

    ``"compute"`` is ET++'s axis (its stages are 10% slices of the compute budget, launcher L37-63); ``"epochs"`` is the
    ICCV axis (equal epoch segments, ``ET_training.py`` L54-63), measured as epochs done over the run's epochs.
    """
    if axis == "compute":
        return progress.compute_fraction
    if axis == "steps":
        return progress.step_fraction
    total_epochs = progress.total_steps / progress.steps_per_epoch
    return progress.epoch / total_epochs


def stage_index(fraction: float, num_stages: int) -> int:
    """Index of the equal-width stage containing ``fraction``: stage k covers [k/n, (k+1)/n); 1.0 is the last."""
    return min(max(math.floor(fraction * num_stages), 0), num_stages - 1)


def scaled_bandwidths(table: tuple[int, ...], base_resolution: int, size_increment: int) -> tuple[int, ...]:
    """Rescale a bandwidth table written for base 224 to ``base_resolution``, rounded to ``size_increment``.

    The released code is fixed to a 224 base (``main_buffer.py`` L68-69); scaling proportionally is what
    CurBench does for other sizes. Rounding keeps B a multiple of the model's patch/window stride (Swin needs a
    multiple of 32, DeiT of 16; ``models/swin.py`` L493). Python ``round`` is used (halves go to the even multiple).
    """
    out = []
    for bandwidth in table:
        scaled = bandwidth * base_resolution / TABLE_BASE
        out.append(min(base_resolution, max(size_increment, size_increment * round(scaled / size_increment))))
    return tuple(out)


def fft_low_frequency_crop(images: torch.Tensor, bandwidth: int) -> torch.Tensor:
    """Keep the centre ``bandwidth × bandwidth`` block of each image's 2-D spectrum: a ``[B,C,bw,bw]`` image.

    ICCV EfficientTrain's ``freq_crop`` (``utils.py`` L519-541 at 552b73c): FFT, keep frequencies
    ``-bw//2 … bw - bw//2 - 1`` on both axes, scale by ``bw²/(H·W)`` so intensities (the DC term, i.e. each
    channel's mean) are preserved, inverse FFT, real part. Output pixel j samples the input at ``j·H/bw``
    (the DFT grid), which is half a source pixel off a resize's pixel-centre grid. Runs on the tensor's device;
    half-precision inputs are transformed in float32 (``torch.fft`` has no fp16/bf16 kernels for these sizes).
    """
    import torch

    height, width = images.shape[-2:]
    if not 0 < bandwidth <= min(height, width):
        raise ValueError(f"bandwidth {bandwidth} must be in [1, {min(height, width)}] for {height}×{width} images")
    if not images.is_floating_point():
        raise ValueError(f"expected a floating-point (normalised) batch, got {images.dtype}")
    work = images if images.dtype in (torch.float32, torch.float64) else images.float()
    spectrum = torch.fft.fftshift(torch.fft.fft2(work), dim=(-2, -1))
    top, left = height // 2 - bandwidth // 2, width // 2 - bandwidth // 2
    centre = spectrum[..., top : top + bandwidth, left : left + bandwidth]
    cropped = torch.fft.ifft2(torch.fft.ifftshift(centre, dim=(-2, -1))).real
    cropped = cropped * (bandwidth * bandwidth / (height * width))
    return cropped.to(images.dtype)


def resize_low_frequency(image: torch.Tensor | Image.Image, bandwidth: int) -> torch.Tensor | Image.Image:
    """Lanczos down-sampling of a ``[C,H,W]`` tensor or a PIL image to ``bandwidth × bandwidth``.

    ET++'s released implementation (``datasets_buffer.py`` L75-82): inserted after RandAugment at the base
    size, before ToTensor/Normalize, so the loader's CPU work after it runs at the small size. Lanczos is the
    PIL filter closest to the exact FFT crop (docs/references.md). Tensors need torchvision ≥ 0.27 (its native Lanczos,
    which matches PIL's to rounding); PIL images work with any version.
    """
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as tvf

    return tvf.resize(image, [bandwidth, bandwidth], interpolation=InterpolationMode.LANCZOS, antialias=True)


class LowFrequencyCropParams(CurriculumParams):
    method: Literal["fft", "resize"] = Field(
        "resize",
        description="'resize': Lanczos in the loader after augmentation (ET++ as released); "
        "'fft': exact spectrum crop of the batch on the device (ICCV ET).",
    )
    schedule: Literal["et++", "et++_deit", "et++_convnext", "iccv"] = Field(
        "et++", description="Published bandwidth table (ET++ launchers L13-17, ICCV ET_training.py L51)."
    )
    bandwidths: list[Int] | None = Field(
        None, description="Your own table of B per equal stage, written for base 224; replaces the schedule's."
    )
    base_resolution: Int = Field(224, gt=0, description="Full training size; tables are scaled from 224.")
    size_increment: Int = Field(32, gt=0, description="Scaled bandwidths are rounded to a multiple of this.")
    indexed_by: Literal["compute", "epochs"] | None = Field(
        None, description="Axis of the equal stages; default: compute for ET++ tables, epochs for 'iccv'."
    )

    @model_validator(mode="after")
    def _check_table(self) -> LowFrequencyCropParams:
        if self.bandwidths is not None:
            if not self.bandwidths:
                raise ValueError("bandwidths must list at least one stage")
            if any(not 0 < b <= TABLE_BASE for b in self.bandwidths):
                raise ValueError(f"bandwidths are written for base {TABLE_BASE}: each must be in [1, {TABLE_BASE}]")
        if self.size_increment > self.base_resolution:
            raise ValueError(f"size_increment {self.size_increment} exceeds base_resolution {self.base_resolution}")
        return self


class LowFrequencyCrop(Curriculum):
    """Low-frequency cropping (EfficientTrain, ICCV'23; EfficientTrain++, TPAMI'24).

    What: early stages see only the centre B×B of each image's Fourier spectrum, i.e. a B×B image holding its
    low frequencies; B grows to the full size by the end. Sets ``StageState.bandwidth`` (B equal to the base
    size means "no cropping"); the data side applies ``method`` with :func:`resize_low_frequency` (loader,
    after augmentation) or :func:`fft_low_frequency_crop` (device, before mixup).

    When it helps: image classifiers trained from scratch (ResNet, DeiT, Swin, ConvNeXt); ET++ reports
    1.45–1.64× wall-time speed-ups at equal or better ImageNet accuracy (TPAMI Table 7).
    Pair it with ``randaugment_ramp`` (weak augmentation early), as the papers do.

    Parameters: ``method`` (``resize`` | ``fft``), ``schedule`` (``et++``: 96,96,160×4,224×4;
    ``et++_deit``: 96,96,160×4,192,192,224,224; ``et++_convnext``: 160×6,224×4; ``iccv``: 160,160,160,192,224),
    ``bandwidths`` (own table), ``base_resolution`` and ``size_increment`` (other sizes scale the table),
    ``indexed_by`` (``compute``: stage k covers compute fraction [k/n, (k+1)/n); ``epochs``: equal epoch segments).

    Source: ET++ launchers ``_ET_pp_main_*.py`` L13-17, L44-63 and ``datasets_buffer.py`` L75-82;
    ICCV ``ET_training.py`` L51-64 and ``utils.py`` L519-541 at commit 552b73c.
    """

    name: ClassVar[str] = "low_frequency_crop"
    summary: ClassVar[str] = "EfficientTrain(++) low-frequency cropping: bandwidth B grows per compute or epoch stage"
    Params: ClassVar[type[CurriculumParams]] = LowFrequencyCropParams
    indexed_by: str = "compute"  # with the default params; each instance sets its own from its params

    def __init__(self, params: LowFrequencyCropParams) -> None:
        self.params = params
        table = tuple(params.bandwidths) if params.bandwidths is not None else SCHEDULES[params.schedule]
        self.indexed_by = params.indexed_by or SCHEDULE_AXIS[params.schedule]
        self.bandwidths = scaled_bandwidths(table, params.base_resolution, params.size_increment)
        self.crops_on_device = params.method == "fft"  # the data side then crops the device batch, before mixup

    def state_at(self, progress: Progress) -> StageState:
        stage = stage_index(progress_fraction(progress, self.indexed_by), len(self.bandwidths))
        return StageState(bandwidth=self.bandwidths[stage])
