"""What changes when the run has a CUDA GPU: pinned loader memory, TF32, cuDNN autotuning, fused Adam, channels_last,
and fp16 GradScaler settings.

Every function takes the CUDA check as an argument defaulting to ``torch.cuda.is_available()`` so tests can take the
CUDA path on a CPU machine; on CPU each one is a no-op (VAR sets TF32 only ``if torch.cuda.is_available()``,
``utils/arg_util.py:168``).

The references, for each switch:

- pinned memory + ``non_blocking=True`` copies: VAR (``train.py:55, 277-278``), ET++ (``main_buffer.py:270``,
  ``--pin_mem`` default True at :196), Pyramid-Flow (``train/train_pyramid_flow.py:199-203``). Without pinned pages a
  ``non_blocking`` copy is synchronous.
- TF32 for fp32 matmuls and cuDNN convolutions: VAR ``utils/arg_util.py:110`` (``tf32 = True``), applied at :167-172
  (``cudnn.allow_tf32``, ``cuda.matmul.allow_tf32``, ``set_float32_matmul_precision('high')``) from :239.
- ``cudnn.benchmark``: VAR ``benchmark = (pg == 0)`` (``utils/arg_util.py:240``, set at :115), i.e. off under
  progressive training, whose sequence length changes per stage; ET++ always on (``main_buffer.py:229``);
  super-gradients and Pyramid-Flow's DiT trainer never set it (torch's default, off).
- fused AdamW: VAR ``train.py:118-119`` (``fused=args.afuse``, default True, ``utils/arg_util.py:60``). The fused
  kernels exist for CUDA tensors only, so they are asked for only on CUDA. On CPU, torch's default is the
  per-tensor loop; ``foreach=True`` (its multi-tensor path) gives the same bits (tests/engine/test_gpu_ready.py) in
  less time (one AdamW step, median of 30, 2 threads: YOLO-NAS-Pose N's 481 tensors 30 vs 39 ms, timm's resnet18
  30 vs 37 ms; about 4 % of a YOLO-NAS-Pose N training step at 64 px, batch 4).
- fp16 GradScaler: VAR ``utils/amp_sc.py:27`` (``GradScaler(init_scale=2.**11, growth_interval=1000)``) and the cap
  at :57-61 (a scale above 32768 is set back to 32768 after the step: "fp16 will overflow when >65536").
"""

from __future__ import annotations

from typing import Any

import torch

# The DataLoader prefetches this many batches per worker (torch's default), chosen by bench/loader_prefetch.py: the
# imagenet pipeline at 224 px, 2 workers on the 2-core dev VM, batch 16, a host wait of 24 ms ± 50 % per step (a
# GPU step as long as the loader's own batch time), 3 rounds: prefetch 1 / 2 / 4 gave 509 / 534 / 537 images/s
# (median), so 2 recovers the 5 % that 1 loses to uneven steps and 4 adds 0.5 % (inside the rounds' spread) for
# twice the queued (pinned) batches. One training iterator spans the whole run (the batch sampler covers every
# step), so ``persistent_workers`` would change nothing but keep the workers alive after the last step.
PREFETCH_FACTOR = 2
ADAM_OPTIMIZERS = ("adamw", "adam")


def cuda_present() -> bool:
    return torch.cuda.is_available()


def loader_options(num_workers: int, cuda: bool | None = None) -> dict[str, Any]:
    """Keyword arguments of the training DataLoader: pinned pages on CUDA, the prefetch depth with workers."""
    cuda = cuda_present() if cuda is None else cuda
    options: dict[str, Any] = {"num_workers": num_workers, "pin_memory": cuda, "persistent_workers": False}
    if num_workers > 0:
        options["prefetch_factor"] = PREFETCH_FACTOR
    return options


def configure_backends(training, has_curriculum: bool, cuda: bool | None = None) -> dict[str, bool]:
    """Set TF32 and cuDNN autotuning from ``training.tf32`` / ``training.cudnn_benchmark``; return what was set.

    ``cudnn_benchmark: auto`` is VAR's rule: on without a curriculum, off with one (shapes change per stage).
    """
    cuda = cuda_present() if cuda is None else cuda
    if not cuda:
        return {}
    benchmark = training.cudnn_benchmark
    if benchmark == "auto":
        benchmark = not has_curriculum
    torch.backends.cuda.matmul.allow_tf32 = bool(training.tf32)
    torch.backends.cudnn.allow_tf32 = bool(training.tf32)
    torch.set_float32_matmul_precision("high" if training.tf32 else "highest")
    torch.backends.cudnn.benchmark = bool(benchmark)
    return {"tf32": bool(training.tf32), "cudnn_benchmark": bool(benchmark)}


def optimizer_options(name: str, cuda: bool | None = None) -> dict[str, Any]:
    """``fused=True`` for torch's AdamW/Adam on CUDA (VAR ``train.py:118-119``), ``foreach=True`` for them on CPU
    (the per-tensor loop's exact result, faster); nothing for the other optimizers."""
    if name not in ADAM_OPTIMIZERS:
        return {}
    cuda = cuda_present() if cuda is None else cuda
    return {"fused": True} if cuda else {"foreach": True}


def to_memory_format(model: torch.nn.Module, channels_last: bool) -> torch.nn.Module:
    """Conv weights (4-D parameters) in channels_last (NHWC) when asked; other tensors are unaffected."""
    return model.to(memory_format=torch.channels_last) if channels_last else model


def to_device(batch: dict[str, torch.Tensor], device, channels_last: bool = False) -> dict[str, torch.Tensor]:
    """Host batch to the device with ``non_blocking`` copies (asynchronous from pinned pages); 4-D images in
    channels_last when the model is."""
    moved = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    if channels_last:
        moved = {
            key: value.contiguous(memory_format=torch.channels_last) if value.dim() == 4 else value
            for key, value in moved.items()
        }
    return moved


def accelerator_kwargs(training) -> dict[str, Any]:
    """``kwargs_handlers`` for the Accelerator: the recipe's GradScaler settings when it trains in fp16."""
    if training.precision not in ("fp16", "auto"):
        return {}
    from accelerate.utils import GradScalerKwargs

    scaler = training.grad_scaler
    handler = GradScalerKwargs(
        init_scale=scaler.init_scale,
        growth_factor=scaler.growth_factor,
        backoff_factor=scaler.backoff_factor,
        growth_interval=scaler.growth_interval,
    )
    return {"kwargs_handlers": [handler]}


class ScaleCap:
    """VAR's cap on the fp16 loss scale (``utils/amp_sc.py:57-61``): when the scale a step ran with was above
    ``max_scale``, the next step runs at ``max_scale``.

    Accelerate's prepared optimizer already called ``scaler.update()``; ``update(new_scale=...)`` then overrides the
    new scale, as VAR does. One difference: VAR skips the normal update on such a step, so its growth counter is not
    advanced; here it was (the next growth comes one step earlier).
    """

    def __init__(self, accelerator, max_scale: float | None):
        self.scaler = getattr(accelerator, "scaler", None)
        self.max_scale = max_scale if self.scaler is not None else None
        self._before: float | None = None

    def before_step(self) -> None:
        if self.max_scale is not None:
            self._before = self.scaler.get_scale()

    def after_step(self) -> None:
        if self.max_scale is not None and self._before is not None and self._before > self.max_scale:
            self.scaler.update(new_scale=float(self.max_scale))
