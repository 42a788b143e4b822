"""The recipe schema: one pydantic model per YAML section, every one rejecting unknown keys.

Field names are the recipe's vocabulary and the engine reads them directly (``recipe.optim.lr``,
``recipe.batch.global_batch``). Constraints live on the fields so that :mod:`curricurun.recipe.problems`
can phrase a bad value as "expected a positive number" from the field alone. Rules that tie several
fields together (exactly one training length, exactly one batch size) are model validators whose
messages name every field involved.

``setup`` and each ``curriculum`` entry are :class:`ComponentSpec` s, ``{name: ..., **params}``: the
only models that accept extra keys, because those keys are the parameters of a registered component and
are validated against that component's own ``Params`` model by the loader (:mod:`curricurun.recipe.loading`).

The data and optimisation sections live in :mod:`.data_sections` and :mod:`.optim_sections`, the shared
types and rules in :mod:`.fields`; every section is importable from here.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from curricurun.recipe.data_sections import AugmentConfig, BatchConfig, DataConfig, ReplayConfig
from curricurun.recipe.fields import (
    ComponentSpec,
    NonNegativeFloat,
    NotBoolFloat,
    NotBoolInt,
    OpenUnitFraction,
    PositiveFloat,
    PositiveInt,
    Section,
    Seed,
    exactly_one,
    one_default_period,
)
from curricurun.recipe.generative_eval import GenerativeEvalConfig
from curricurun.recipe.optim_sections import LrScalingConfig, OptimConfig, ScheduleConfig

__all__ = [
    "AugmentConfig",
    "BatchConfig",
    "CheckpointConfig",
    "ComponentSpec",
    "DataConfig",
    "EarlyStoppingConfig",
    "EmaConfig",
    "EvalConfig",
    "FsdpConfig",
    "GradScalerConfig",
    "LrScalingConfig",
    "OptimConfig",
    "Recipe",
    "ReplayConfig",
    "ScheduleConfig",
    "Section",
    "TrainingConfig",
]


class EvalConfig(Section):
    """How often to evaluate; ``every_steps`` replaces the default ``every_epochs: 1.0``; both null: never."""

    every_epochs: PositiveFloat | None = 1.0
    every_steps: PositiveInt | None = None
    use_ema: bool = False
    generative: GenerativeEvalConfig | None = None  # FID at each evaluation (var, pyramid_flow): generative_eval.py

    @model_validator(mode="after")
    def _one_period(self) -> EvalConfig:
        one_default_period(self)
        return self


class CheckpointConfig(Section):
    """How often to checkpoint and how many to keep; ``every_steps`` replaces the default ``every_epochs``."""

    every_epochs: PositiveFloat | None = 1.0
    every_steps: PositiveInt | None = None
    keep_last: PositiveInt = 2

    @model_validator(mode="after")
    def _one_period(self) -> CheckpointConfig:
        one_default_period(self)
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
    growth_factor: Annotated[float, Field(gt=1), NotBoolFloat] = 2.0
    backoff_factor: OpenUnitFraction = 0.5
    growth_interval: PositiveInt = 2000
    max_scale: PositiveFloat | None = None


class FsdpConfig(Section):
    """Sharded training through Accelerate's FSDP plugin (curricurun/engine/sharding.py; GPUs only).

    Pyramid-Flow's trainer (``train/train_pyramid_flow.py``, ``build_fsdp_plugin``) shards with ``SHARD_GRAD_OP``
    (its default, "zero2") or ``FULL_SHARD`` ("zero3") and wraps each transformer block; ``wrap_classes`` names
    those block classes (empty: the whole model is one unit). Checkpoints hold the full state dict.
    """

    version: Annotated[Literal[1, 2], NotBoolInt] = 2
    sharding_strategy: Literal["SHARD_GRAD_OP", "FULL_SHARD"] = "SHARD_GRAD_OP"
    wrap_classes: list[str] = Field(default_factory=list)


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
    # Host memory the C library frees during a step: 'retain' keeps it for the next step (glibc: no page faults
    # per step, resident size stays at a step's peak); 'system' leaves malloc as it is (engine/host_memory.py).
    host_memory: Literal["retain", "system"] = "retain"
    grad_scaler: GradScalerConfig = Field(default_factory=GradScalerConfig)
    fsdp: FsdpConfig | None = None
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)
    log_every_steps: PositiveInt = 50
    log_with: list[str] = Field(default_factory=list)
    output_dir: str | None = None
    ema: EmaConfig | None = None
    early_stopping: EarlyStoppingConfig | None = None

    @model_validator(mode="after")
    def _consistent(self) -> TrainingConfig:
        exactly_one(self, ("epochs", "steps", "budget_epochs"))
        if self.fsdp is not None and self.ema is not None:
            raise ValueError("'fsdp' with 'ema' is not supported: the EMA would keep an unsharded copy of the model")
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
    seed: Seed = 0
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
    def _generative_eval_needs_a_generator(self) -> Recipe:
        if self.training.eval.generative is not None:
            from curricurun.setups import get as get_setup
            from curricurun.setups.base import optional_hooks

            if optional_hooks(get_setup(self.setup.name)).generator is None:
                raise ValueError(
                    f"'training.eval.generative' needs a generative setup (var, pyramid_flow), got '{self.setup.name}'"
                )
        return self

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
