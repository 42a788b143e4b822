"""The learning rate, in one place: shapes and the ``lin<T>`` parser, warm-up and hold, the world-size rule,
the LR and weight-decay schedules as pure functions of the step, and writing them into an optimizer.

The LR that the engine writes is ``rule.effective_lr × schedule.ratio_at(step)``, where ``rule`` is the
world-size rule (:func:`resolve_lr_rule`), computed once, logged and stored in the checkpoint.
Modules: :mod:`.shapes` (names, parser), :mod:`.warmup` (warm-up/hold lengths), :mod:`.rule` (batch
scaling), :mod:`.schedule` (LR/WD per step), :mod:`.optimizer` (param groups). None imports torch.
"""

from curricurun.lr.optimizer import apply_to_optimizer
from curricurun.lr.rule import LR_RULES, LrRule, resolve_lr_rule
from curricurun.lr.schedule import LrSchedule, WeightDecaySchedule
from curricurun.lr.shapes import VALID_SHAPES_TEXT, parse_shape
from curricurun.lr.warmup import WarmupHold

__all__ = [
    "LR_RULES",
    "VALID_SHAPES_TEXT",
    "LrRule",
    "LrSchedule",
    "WarmupHold",
    "WeightDecaySchedule",
    "apply_to_optimizer",
    "parse_shape",
    "resolve_lr_rule",
]
