"""The CUDA switches of curricurun/engine/device.py, exercised on CPU: pinned loader pages and non-blocking copies,
fused Adam only on CUDA (foreach on CPU, bit for bit), channels_last, torch.compile; the last two give the eager
NCHW loss and gradients to 1e-5."""

from __future__ import annotations

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
        defaults = build_optimizer(optim, groups).defaults
        assert bool(defaults.get("fused")) is (cuda and name != "sgd"), name
        assert bool(defaults.get("foreach")) is (not cuda and name != "sgd"), name


@pytest.mark.parametrize("name", ["adamw", "adam"])
def test_the_cpu_multi_tensor_adam_gives_the_per_tensor_loops_bits(name):
    """foreach=True on CPU is a speed choice only: parameters and moments equal torch's default loop bit for bit,
    with two decay groups and an LR that changes every step, as the engine drives it."""
    optimizer_class = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}[name]
    torch.manual_seed(0)
    shapes = [(64, 32, 3, 3), (64,), (10, 256), (10,)]
    start = [torch.randn(shape) for shape in shapes]

    def train(foreach: bool):
        params = [torch.nn.Parameter(tensor.clone()) for tensor in start]
        groups = [{"params": params[::2], "weight_decay": 0.05}, {"params": params[1::2], "weight_decay": 0.0}]
        optimizer = optimizer_class(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8, foreach=foreach)
        gradients = torch.Generator().manual_seed(1)
        for step in range(6):
            for param in params:
                param.grad = torch.randn(param.shape, generator=gradients)
            for group in optimizer.param_groups:
                group["lr"] = 1e-3 * (step + 1) / 6
            optimizer.step()
        return params, optimizer.state_dict()["state"]

    (loop_params, loop_state), (multi_params, multi_state) = train(False), train(True)
    assert all(torch.equal(a, b) for a, b in zip(loop_params, multi_params, strict=True))
    for index, moments in loop_state.items():
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(moments[key], multi_state[index][key]), (index, key)


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


def _tiny_conv_net() -> torch.nn.Module:
    """Two conv + batch-norm blocks and a linear head: every op whose kernel depends on the memory format."""
    torch.manual_seed(0)
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10),
    )  # fmt: skip


def _engine_model(tmp_path, **training):
    """The model as the engine builds it (``run_builder._model_optimizer_ema``: memory format, prepare, compile)."""
    from accelerate import Accelerator

    from curricurun.engine.run_builder import _model_optimizer_ema
    from curricurun.recipe import load_recipe

    recipe = load_recipe(small_recipe(tmp_path, "tiny", training={"steps": 4, "epochs": None, **training}))
    model, _, _ = _model_optimizer_ema(recipe, SimpleNamespace(build_model=_tiny_conv_net), Accelerator(cpu=True), 4)
    return model


def _loss_and_gradients(model, images, labels):
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    return loss.detach(), [parameter.grad for parameter in model.parameters()]


@pytest.mark.parametrize("switch", ["channels_last", "compile"])
def test_channels_last_and_compile_give_the_eager_loss_and_gradients_at_every_step(tmp_path, switch):
    """Four AdamW steps of an eager NCHW reference; at each, the engine-built model (``training.<switch>: true``)
    starts from the reference's weights and gives its loss to 1e-5 and its gradients to 1e-5.

    Why per step from identical weights, not two free runs: NHWC convolutions and inductor's fused kernels sum in
    another order, so gradients differ by rounding (~3e-7 here), and Adam turns that into more: its first updates
    are about ``lr · sign(g)``, so a component whose gradient is rounding-level near zero can move by 2·lr the other
    way. Two free 4-step runs of the engine differed by 2.5e-4 in loss at steps 3-4 from that alone; the comparison
    at identical weights measures only what channels_last or compile do to one step.
    """
    reference = _tiny_conv_net()
    other = _engine_model(tmp_path, **{switch: True})
    target = getattr(other, "_orig_mod", other)  # the module torch.compile wraps, whose weights we set
    convs = [m.weight for m in target.modules() if isinstance(m, torch.nn.Conv2d)]
    if switch == "channels_last":
        assert all(w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous() for w in convs)
    else:
        assert isinstance(other, torch._dynamo.eval_frame.OptimizedModule)
    optimizer = torch.optim.AdamW(reference.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for step in range(4):
        images, labels = torch.randn(16, 3, 16, 16, generator=generator), torch.randint(10, (16,), generator=generator)
        target.load_state_dict(reference.state_dict())  # copies into the existing (NHWC) storage
        moved = device.to_device({"image": images}, "cpu", channels_last=switch == "channels_last")["image"]
        assert moved.is_contiguous(memory_format=torch.channels_last) is (switch == "channels_last")
        expected_loss, expected_grads = _loss_and_gradients(reference, images, labels)
        loss, grads = _loss_and_gradients(other, moved, labels)
        assert float(loss) == pytest.approx(float(expected_loss), abs=1e-5, rel=0), step
        for got, want in zip(grads, expected_grads, strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4, msg=f"step {step}")
        if switch == "channels_last":
            assert all(w.grad.is_contiguous(memory_format=torch.channels_last) for w in convs)
        optimizer.step()


@needs_fashion_mnist
def test_the_engine_copies_channels_last_batches_when_the_recipe_asks(tmp_path, monkeypatch):
    """The loader path of ``train()``: every batch reaches the loss in NHWC (two steps, 32 samples)."""
    from curricurun.engine.trainer import train
    from curricurun.recipe import load_recipe

    seen = []
    original = device.to_device

    def recording(batch, target, channels_last=False):
        moved = original(batch, target, channels_last)
        seen.append(channels_last and moved["image"].is_contiguous(memory_format=torch.channels_last))
        return moved

    monkeypatch.setattr(device, "to_device", recording)
    path = small_recipe(
        tmp_path, "nhwc", training={"steps": 2, "epochs": None, "channels_last": True},
        data={"eval_split": None, "max_train_samples": 32}, schedule={"shape": "constant", "warmup_steps": 0},
    )  # fmt: skip
    recipe = load_recipe(path)
    train(recipe, recipe.resolved, output_dir=str(tmp_path / "run"))
    assert seen == [True, True]
