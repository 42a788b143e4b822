"""The CUDA switches of curricurun/engine/device.py, exercised on CPU: pinned loader pages and non-blocking copies,
fused Adam only on CUDA, channels_last, torch.compile; the last two give the eager NCHW run's losses to 1e-5."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch
from engine_helpers import needs_fashion_mnist, small_recipe

from curricurun.engine import device


class RecordingTensor:
    """Stands for a host tensor: records how it was copied."""

    def __init__(self):
        self.calls = []

    def to(self, target, **kwargs):
        self.calls.append((target, kwargs))
        return torch.zeros(2, 3, 4, 4)


def _train(tmp_path, name: str, **training):
    from curricurun.engine.trainer import train
    from curricurun.recipe import load_recipe

    path = small_recipe(
        tmp_path, name, training={"steps": 4, "epochs": None, "log_every_steps": 1, **training},
        data={"eval_split": None, "max_train_samples": 64}, schedule={"shape": "cosine", "warmup_steps": 1},
    )  # fmt: skip
    recipe = load_recipe(path)
    run_dir = tmp_path / name
    train(recipe, recipe.resolved, output_dir=str(run_dir))
    return [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_loader_pins_memory_and_copies_are_non_blocking_when_cuda_is_present(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    options = device.loader_options(num_workers=2)
    assert options["pin_memory"] is True and options["prefetch_factor"] == device.PREFETCH_FACTOR
    loader = torch.utils.data.DataLoader(list(range(8)), batch_size=2, **options)
    assert loader.pin_memory is True and loader.persistent_workers is False and loader.prefetch_factor == 2
    host = RecordingTensor()
    moved = device.to_device({"image": host}, "cuda:0", channels_last=True)
    assert host.calls == [("cuda:0", {"non_blocking": True})]
    assert moved["image"].is_contiguous(memory_format=torch.channels_last)


def test_loader_does_not_pin_without_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert device.loader_options(num_workers=0) == {"num_workers": 0, "pin_memory": False, "persistent_workers": False}


@pytest.mark.parametrize("cuda", [True, False])
def test_fused_adam_is_chosen_only_on_cuda(monkeypatch, cuda):
    from curricurun.engine.optimizers import build_optimizer

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    groups = [{"params": [torch.nn.Parameter(torch.zeros(3))], "weight_decay_applies": True}]
    for name in ("adamw", "adam", "sgd"):
        optim = SimpleNamespace(name=name, lr=0.1, betas=(0.9, 0.95), eps=1e-8, momentum=0.9, nesterov=False)
        fused = build_optimizer(optim, groups).defaults.get("fused")
        assert bool(fused) is (cuda and name != "sgd"), name


def test_tf32_and_cudnn_benchmark_follow_the_recipe_only_on_cuda(monkeypatch):
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark,
             torch.get_float32_matmul_precision())  # fmt: skip
    try:
        auto = SimpleNamespace(tf32=True, cudnn_benchmark="auto")
        assert device.configure_backends(auto, has_curriculum=True, cuda=False) == {}
        chosen = device.configure_backends(auto, has_curriculum=True, cuda=True)
        assert chosen == {"tf32": True, "cudnn_benchmark": False}
        assert torch.backends.cuda.matmul.allow_tf32 and torch.get_float32_matmul_precision() == "high"
        assert device.configure_backends(auto, has_curriculum=False, cuda=True)["cudnn_benchmark"] is True
        assert torch.backends.cudnn.benchmark is True
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.backends.cudnn.benchmark = saved[2]
        torch.set_float32_matmul_precision(saved[3])


def test_var_scaler_settings_reach_accelerate_and_the_scale_is_capped():
    from curricurun.recipe import load_recipe

    training = load_recipe("recipes/var_d16.yaml").training
    (handler,) = device.accelerator_kwargs(training)["kwargs_handlers"]
    assert (handler.init_scale, handler.growth_interval, handler.growth_factor) == (2048, 1000, 2.0)
    assert training.tf32 and training.cudnn_benchmark == "auto" and training.grad_scaler.max_scale == 32768

    class Scaler:  # torch.amp.GradScaler's get_scale/update(new_scale) contract
        scale = 65536.0

        def get_scale(self):
            return self.scale

        def update(self, new_scale=None):
            self.scale = new_scale

    cap = device.ScaleCap(SimpleNamespace(scaler=Scaler()), 32768)
    cap.before_step()
    cap.scaler.scale = 131072.0  # what Accelerate's step (update after a growth interval) left
    cap.after_step()
    assert cap.scaler.scale == 32768.0


def test_channels_last_changes_conv_weights_memory_format():
    import timm

    model = device.to_memory_format(timm.create_model("test_resnet", num_classes=10), channels_last=True)
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)  # (1×1 kernels are contiguous in both layouts)


@needs_fashion_mnist
@pytest.mark.slow
def test_channels_last_and_compile_give_the_eager_losses(tmp_path, monkeypatch):
    seen = []
    original = device.to_device

    def recording(batch, target, channels_last=False):
        moved = original(batch, target, channels_last)
        seen.append(moved["image"].is_contiguous(memory_format=torch.channels_last) and channels_last)
        return moved

    monkeypatch.setattr(device, "to_device", recording)
    eager = _train(tmp_path, "eager")
    assert not any(seen)
    nhwc = _train(tmp_path, "nhwc", channels_last=True)
    assert seen[-1] is True
    compiled = _train(tmp_path, "compiled", compile=True)
    assert len(eager) == 4
    assert nhwc == pytest.approx(eager, abs=1e-5, rel=0)
    assert compiled == pytest.approx(eager, abs=1e-5, rel=0)
