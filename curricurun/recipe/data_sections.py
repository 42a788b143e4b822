"""The recipe's data sections: ``data`` (with ``augment`` and ``replay``) and ``batch``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from curricurun.recipe.fields import (
    ComponentSpec,
    NonEmptyName,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveInt,
    Section,
    UnitFraction,
    exactly_one,
)


class AugmentConfig(Section):
    """Training-time augmentation; everything is off unless asked for.

    ``mixup`` / ``cutmix`` are the Beta(α, α) parameters of timm's ``Mixup`` (0 = off) and ``random_erasing``
    the probability of timm's ``RandomErasing``; EfficientTrain++ trains with mixup 0.8, cutmix 1.0, switch
    probability 0.5 and random erasing 0.25 in ``pixel`` mode (ET++ ``main_buffer.py`` L116-151
    defaults). Label smoothing stays a setup parameter: it is applied to the mixed targets by the loss.
    """

    hflip: bool = False
    randaugment_magnitude: NonNegativeFloat | None = None
    randaugment_num_ops: PositiveInt = 2
    random_crop_padding: NonNegativeInt = 0
    mixup: NonNegativeFloat = 0.0
    cutmix: NonNegativeFloat = 0.0
    mixup_prob: UnitFraction = 1.0
    mixup_switch_prob: UnitFraction = 0.5
    mixup_mode: Literal["batch", "pair", "elem"] = "batch"
    random_erasing: UnitFraction = 0.0
    random_erasing_mode: Literal["const", "rand", "pixel"] = "pixel"
    random_erasing_count: PositiveInt = 1


class ReplayConfig(Section):
    """EfficientTrain++'s replay buffer for CPU-bound loaders (ET++ ``engine_buffer.py`` L39-92); off unless given.

    One entry per equal compute stage (stage k covers the compute fraction [k/n, (k+1)/n), as the ET++
    bandwidth stages): the loader makes ``1/replay_times`` of each batch fresh, the rest are chunks drawn with
    replacement from the last ``buffer_size`` fresh batches, kept as fp16 on the host. The reference's
    ``_ET_pp_wReplay_main_res50.py``: ``replay_times [4,4,2,2,2,2,1,1,1,1]``, ``buffer_size [1920,1920,256,256,
    256,256,0,0,0,0]``, 32 chunks per fresh batch.
    """

    replay_times: list[PositiveInt]
    buffer_size: list[NonNegativeInt]
    chunks: PositiveInt = 32

    @model_validator(mode="after")
    def _one_entry_per_stage(self) -> ReplayConfig:
        if not self.replay_times or len(self.replay_times) != len(self.buffer_size):
            raise ValueError(
                f"'replay_times' and 'buffer_size' need one entry per stage each, got {len(self.replay_times)}"
                f" and {len(self.buffer_size)}"
            )
        pairs = enumerate(zip(self.replay_times, self.buffer_size, strict=True))
        starved = [stage for stage, (times, size) in pairs if times > 1 and size == 0]
        if starved:
            raise ValueError(f"stage {starved[0]} replays (replay_times > 1) but its 'buffer_size' is 0")
        return self


class DataConfig(Section):
    """Where the images come from and how they are read (docs/offline-data.md)."""

    source: Literal["hub", "local", "idx"]
    path: str
    config: str | None = None
    revision: str | None = None
    train_split: NonEmptyName = "train"
    eval_split: NonEmptyName | None = "test"  # null: no evaluation; "" is a mistake, not a switch
    image_column: str = "image"
    label_column: str = "label"
    image_size: PositiveInt
    num_workers: NonNegativeInt = 0
    max_train_samples: PositiveInt | None = None
    max_eval_samples: PositiveInt | None = None
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    replay: ReplayConfig | None = None
    # The named per-sample image pipeline, {name: imagenet | var | pyramid_flow | small_images, **params}; its
    # parameters are validated against the pipeline's own model (curricurun/data/pipelines/).
    pipeline: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="small_images"))
    # A file that cannot be decoded: 'error' stops with one line naming it (exit 2); 'skip' loads the next
    # image of the split in its place and counts it in the log.
    corrupt_images: Literal["error", "skip"] = "error"


class BatchConfig(Section):
    """Batch size, given either per device or globally (all ranks, one optimizer step), never both."""

    per_device: PositiveInt | None = None
    global_batch: PositiveInt | None = Field(default=None, alias="global")
    accumulation: PositiveInt = 1

    @model_validator(mode="after")
    def _one_batch_size(self) -> BatchConfig:
        exactly_one(self, ("per_device", "global_batch"))
        return self
