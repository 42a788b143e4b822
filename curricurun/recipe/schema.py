"""The recipe schema: one pydantic model per YAML section, every one rejecting unknown keys.

Field names are the recipe's vocabulary and the engine reads them directly (``recipe.optim.lr``,
``recipe.batch.global_batch``). Constraints live on the fields so that :mod:`curricurun.recipe.problems`
can phrase a bad value as "expected a positive number" from the field alone. Rules that tie several
fields together (exactly one training length, exactly one batch size) are model validators whose
messages name every field involved.

``setup`` and each ``curriculum`` entry are :class:`ComponentSpec` s, ``{name: ..., **params}``: the
only models that accept extra keys, because those keys are the parameters of a registered component and
are validated against that component's own ``Params`` model by the loader (:mod:`curricurun.recipe.loading`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from curricurun.lr import shapes
from curricurun.recipe.problems import did_you_mean, show_value

PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
UnitFraction = Annotated[float, Field(ge=0, le=1)]
OpenUnitFraction = Annotated[float, Field(gt=0, lt=1)]
AdamBeta = Annotated[float, Field(ge=0, lt=1)]

class Section(BaseModel):
    """Base of every recipe section: unknown keys are errors, numbers are finite, numbers may stand for strings."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, coerce_numbers_to_str=True)


def _set_fields(model: BaseModel, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if getattr(model, name) is not None]


def _aliases(model: type[BaseModel], names: list[str]) -> str:
    quoted = [f"'{model.model_fields[name].alias or name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _exactly_one(model: BaseModel, names: tuple[str, ...]) -> None:
    found = _set_fields(model, names)
    if len(found) != 1:
        which = "none" if not found else _aliases(type(model), found)
        raise ValueError(f"set exactly one of {_aliases(type(model), list(names))}, found {which}")


def _at_most_one(model: BaseModel, names: tuple[str, ...]) -> None:
    found = _set_fields(model, names)
    if len(found) > 1:
        everything = _aliases(type(model), list(names))
        raise ValueError(f"set at most one of {everything}, found {_aliases(type(model), found)}")


def _one_default_period(model: BaseModel) -> None:
    """``every_epochs`` defaults to 1.0; giving only ``every_steps`` switches to steps instead of clashing."""
    if model.every_steps is not None and "every_epochs" not in model.model_fields_set:
        model.every_epochs = None
    _at_most_one(model, ("every_epochs", "every_steps"))


class ComponentSpec(BaseModel):
    """A registered component by name plus its parameters: ``{name: progressive_scales, pg: 0.7}``.

    The parameters are kept as given here (``params``); the loader validates them against the
    component's ``Params`` model and the recipe exposes the result (``Recipe.setup_params``).
    """

    model_config = ConfigDict(extra="allow")

    name: str

    @property
    def params(self) -> dict[str, Any]:
        """Every key but ``name``."""
        return dict(self.model_extra or {})


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
    train_split: str = "train"
    eval_split: str | None = "test"
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
        _exactly_one(self, ("per_device", "global_batch"))
        return self


class LrScalingConfig(Section):
    """How the LR follows the batch size: ``lr = base_lr × scale(global_batch / reference)``.

    The reference is a global batch (VAR: 256, ET++: 4096) or a world size whose global batch the
    recipe's LR was tuned for (SuperGradients: 8 GPUs; SG ``distributed_training_utils.py:293-297``).
    """

    rule: Literal["linear", "sqrt", "none"] = "none"
    reference_batch: PositiveInt | None = None
    reference_world_size: PositiveInt | None = None

    @model_validator(mode="after")
    def _one_reference(self) -> LrScalingConfig:
        names = ("reference_batch", "reference_world_size")
        if self.rule == "none":
            _at_most_one(self, names)
        else:
            _exactly_one(self, names)
        return self


class OptimConfig(Section):
    """The optimizer and its hyper-parameters; ``lr`` is the base LR before batch-size scaling."""

    name: Literal["adamw", "adam", "sgd", "lamb"] = "adamw"
    lr: PositiveFloat
    betas: tuple[AdamBeta, AdamBeta] = (0.9, 0.999)
    eps: PositiveFloat = 1e-8
    momentum: NonNegativeFloat = 0.9
    nesterov: bool = False
    weight_decay: NonNegativeFloat = 0.0
    weight_decay_end: NonNegativeFloat | None = None
    no_decay_names: list[str] = Field(default_factory=list)
    # VAR decays its class embedding (an nn.Embedding); most codebases exempt embeddings.
    decay_embeddings: bool = False
    lr_scaling: LrScalingConfig = Field(default_factory=LrScalingConfig)


class ScheduleConfig(Section):
    """The LR shape over training, its warm-up and its length.

    ``unit`` is what the schedule counts: optimizer ``steps``, ``micro_steps`` (VAR), or ``compute``, full-size
    step equivalents of compute spent, so that the LR follows the compute fraction as EfficientTrain++'s
    does (its epoch counter is rescaled by (B_prev/B_new)² at every stage, ET++ ``utils_buffer.py`` L533-542);
    with ``compute`` the warm-up, its ``warmup_max_epochs`` cap, the hold and ``length_epochs`` count compute too.
    """

    shape: str = "cosine"
    warmup_steps: NonNegativeInt | None = None
    warmup_epochs: NonNegativeFloat | None = None
    warmup_fraction: Annotated[float, Field(ge=0, lt=1)] | None = None
    warmup_start_ratio: UnitFraction = 0.0
    hold_steps: NonNegativeInt = 0
    # super-gradients holds the peak LR until an EPOCH (lr_warmup_epochs), so the step count depends on the
    # world size and the dataset: hold_epochs keeps it right on any number of GPUs.
    hold_epochs: NonNegativeFloat | None = None
    # super-gradients caps its warm-up steps at one epoch (LinearBatchLRWarmup): a small dataset warms up faster.
    warmup_max_epochs: PositiveFloat | None = None
    final_ratio: UnitFraction = 0.0
    milestones: list[OpenUnitFraction] = Field(default_factory=list)
    gamma: PositiveFloat = 0.1
    length_epochs: PositiveFloat | None = None
    unit: Literal["steps", "micro_steps", "compute"] = "steps"

    @field_validator("shape")
    @classmethod
    def _known_shape(cls, shape: str) -> str:
        problem = shapes.shape_problem(shape, allow_auto=True)
        if problem is None:
            return shape
        names = (*shapes.NAMED_SHAPES, shapes.AUTO)
        hint = "" if shapes.lin_threshold(shape) is not None else did_you_mean(shape, names)
        raise ValueError(f"{problem}, got {show_value(shape)}{hint}")

    @model_validator(mode="after")
    def _consistent(self) -> ScheduleConfig:
        _at_most_one(self, ("warmup_steps", "warmup_epochs", "warmup_fraction"))
        if self.hold_steps and self.hold_epochs is not None:
            raise ValueError("give 'hold_steps' or 'hold_epochs', not both")
        if self.milestones != sorted(set(self.milestones)):
            raise ValueError(f"'milestones' must increase, got {show_value(self.milestones)}")
        if self.shape == "step" and not self.milestones:
            raise ValueError("shape 'step' needs 'milestones': fractions of training where the LR is scaled by 'gamma'")
        return self


class EvalConfig(Section):
    """How often to evaluate; ``every_steps`` replaces the default ``every_epochs: 1.0``; both null: never."""

    every_epochs: PositiveFloat | None = 1.0
    every_steps: PositiveInt | None = None
    use_ema: bool = False

    @model_validator(mode="after")
    def _one_period(self) -> EvalConfig:
        _one_default_period(self)
        return self


class CheckpointConfig(Section):
    """How often to checkpoint and how many to keep; ``every_steps`` replaces the default ``every_epochs``."""

    every_epochs: PositiveFloat | None = 1.0
    every_steps: PositiveInt | None = None
    keep_last: PositiveInt = 2

    @model_validator(mode="after")
    def _one_period(self) -> CheckpointConfig:
        _one_default_period(self)
        return self


class EmaConfig(Section):
    """Exponential moving average of the weights (SuperGradients' ``ema_decay_schedules.py``).

    ``threshold``: ``min(decay, (1 + step) / (10 + step))``; ``exp``: ``decay · (1 − exp(−beta · step / total_steps))``.
    """

    decay: OpenUnitFraction
    schedule: Literal["constant", "threshold", "exp"] = "constant"
    beta: PositiveFloat | None = None

    @model_validator(mode="after")
    def _beta_for_exp(self) -> EmaConfig:
        if self.schedule == "exp" and self.beta is None:
            raise ValueError("schedule 'exp' needs 'beta' (SuperGradients uses 15 by default)")
        return self


class GradScalerConfig(Section):
    """fp16 loss scaling (Accelerate's ``GradScalerKwargs``; torch's defaults here). VAR uses init 2**11, growth
    every 1000 steps and a cap of 32768 (``utils/amp_sc.py:27, 57-61``); ``max_scale`` is that cap (none: no cap)."""

    init_scale: PositiveFloat = 65536.0
    growth_factor: Annotated[float, Field(gt=1)] = 2.0
    backoff_factor: OpenUnitFraction = 0.5
    growth_interval: PositiveInt = 2000
    max_scale: PositiveFloat | None = None


class EarlyStoppingConfig(Section):
    """Stop when ``metric`` has not improved by ``min_delta`` for ``patience`` evaluations."""

    metric: str
    mode: Literal["max", "min"] = "max"
    patience: PositiveInt
    min_delta: NonNegativeFloat = 0.0


class TrainingConfig(Section):
    """How long to train (exactly one of epochs, steps, budget_epochs) and how to run, evaluate and save.

    ``budget_epochs`` is the EfficientTrain++ budget: compute-equivalent full-size epochs, where a sample
    at side B costs (B / image_size)² (ET++ launchers' ``epoch_scale_ratio``).
    """

    epochs: PositiveFloat | None = None
    steps: PositiveInt | None = None
    budget_epochs: PositiveFloat | None = None
    precision: Literal["no", "fp16", "bf16", "auto"] = "no"
    grad_clip: PositiveFloat | None = None
    # A non-finite loss (or gradient norm, when clipping computes it): ``stop`` ends the run with exit code 3
    # and no checkpoint of the damaged weights; ``skip_step`` drops that step's update and counts it.
    on_nonfinite: Literal["stop", "skip_step"] = "stop"
    compile: bool = False
    # GPU switches (curricurun/engine/device.py; no effect on CPU): TF32 for fp32 matmuls/convolutions, cuDNN
    # autotuning ('auto': VAR's rule, on unless a curriculum changes shapes), NHWC conv nets, fp16 loss scaling.
    tf32: bool = False
    cudnn_benchmark: bool | Literal["auto"] = False
    channels_last: bool = False
    grad_scaler: GradScalerConfig = Field(default_factory=GradScalerConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    log_every_steps: PositiveInt = 50
    log_with: list[str] = Field(default_factory=list)
    output_dir: str | None = None
    ema: EmaConfig | None = None
    early_stopping: EarlyStoppingConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        _exactly_one(self, ("epochs", "steps", "budget_epochs"))
        if self.eval.use_ema and self.ema is None:
            raise ValueError("'eval.use_ema' is true but 'ema' is not set")
        if self.early_stopping is not None and self.eval.every_epochs is None and self.eval.every_steps is None:
            raise ValueError("'early_stopping' needs evaluation: set 'eval.every_epochs' or 'eval.every_steps'")
        return self


class Recipe(Section):
    """A whole training recipe, resolved (bases merged, overrides applied) and validated.

    Build one with :func:`curricurun.recipe.load_recipe` or :func:`curricurun.recipe.recipe_from_dict`:
    they also validate the components and attach their typed parameters, read through
    :attr:`setup_params` and :attr:`curriculum_params`. ``setup`` / ``curriculum`` hold the same
    parameters as plain :class:`ComponentSpec` s (with the components' defaults filled in), which is what
    :attr:`resolved` and :func:`curricurun.recipe.dump_yaml` write out.
    """

    name: str | None = None
    description: str = ""
    seed: NonNegativeInt = 0
    setup: ComponentSpec
    data: DataConfig
    batch: BatchConfig
    optim: OptimConfig
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    curriculum: list[ComponentSpec] = Field(default_factory=list)
    training: TrainingConfig

    _setup_params: BaseModel | None = PrivateAttr(default=None)
    _curriculum_params: tuple[BaseModel, ...] | None = PrivateAttr(default=None)

    @field_validator("description")
    @classmethod
    def _one_line(cls, description: str) -> str:
        lines = len(description.strip().splitlines())
        if lines > 1:
            raise ValueError(f"expected one line (it is shown by `curricurun recipes`), got {lines} lines")
        return description.strip()

    @model_validator(mode="after")
    def _default_output_dir(self) -> Recipe:
        if self.training.output_dir is None and self.name is not None:
            self.training.output_dir = f"runs/{self.name}"
        return self

    def attach_components(self, setup_params: BaseModel, curriculum_params: list[BaseModel]) -> None:
        """Record the components' validated parameters and write them, defaults included, into the specs."""
        self.setup = _spec(self.setup.name, setup_params)
        pairs = zip(self.curriculum, curriculum_params, strict=True)
        self.curriculum = [_spec(spec.name, params) for spec, params in pairs]
        self._setup_params = setup_params
        self._curriculum_params = tuple(curriculum_params)

    @property
    def setup_params(self) -> BaseModel:
        """The setup's validated ``Params`` instance."""
        if self._setup_params is None:
            raise RuntimeError("components not validated: build the recipe with load_recipe() or recipe_from_dict()")
        return self._setup_params

    @property
    def curriculum_params(self) -> tuple[BaseModel, ...]:
        """Each curriculum entry's validated ``Params`` instance, in recipe order."""
        if self._curriculum_params is None:
            raise RuntimeError("components not validated: build the recipe with load_recipe() or recipe_from_dict()")
        return self._curriculum_params

    @property
    def resolved(self) -> dict[str, Any]:
        """The whole recipe as plain JSON-ready data, defaults included: logged and stored with checkpoints."""
        return self.model_dump(mode="json", by_alias=True)


def _spec(name: str, params: BaseModel) -> ComponentSpec:
    return ComponentSpec.model_validate({"name": name, **params.model_dump(mode="json", by_alias=True)})
