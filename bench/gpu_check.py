"""The prepared GPU check (issue 18): one unattended run, at most ~5 minutes on one H100/H200, one JSON object.

Measured side by side in the same process (README "Run on a GPU"):

1. ``var_d16``: VAR-d16 training steps (bf16 autocast, TF32, fused AdamW, the full 680-token pyramid of the 256 px
   patch set) on pre-tokenized batches (``VarSetup.measure_batch``: the tokenizer is not timed): images/s and MFU,
   eager and ``torch.compile``. FLOPs are counted analytically from the shapes of every matmul, convolution and
   attention op of one forward + backward by ``torch.utils.flop_counter.FlopCounterMode`` (multiply-add = 2 FLOPs;
   the optimizer step and element-wise ops are not counted); MFU = counted FLOPs / step time / the GPU's dense
   bf16 peak (989 TFLOP/s for H100 SXM and H200, 756 for H100 PCIe; ``--peak-tflops`` for others).
   The batch is the largest of ``--var-batch`` candidates that runs (VAR's README: 768 over 8 GPUs = 96 each).
2. ``var_stages``: the progressive-scales stages, step time at the first p + 1 scales ÷ the full-sequence step time,
   beside the token ratio e_p / L that ``inspect-schedule`` assumes.
3. ``resnet50``: timm ResNet-50, channels_last, bf16, cudnn.benchmark (as ET++), at the ET++ stage sides
   96/160/224: step-time ratio vs pixel ratio (fidelity = pixel ratio / time ratio, goal ≥ 0.9), and the
   ``imagenet`` pipeline's loader images/s at each stage (one DataLoader worker per core, JPEGs built from
   scikit-image's photos) vs the model's images/s.
4. ``engine_vs_hand``: curricurun's ``train()`` against a minimal hand-written Accelerate loop, same timm
   ResNet-50, data (grey photo crops as an in-memory IDX split), batch, bf16, channels_last: images/s between
   optimizer steps (start-up excluded), goal ≥ 0.98.

Each timing is the median of per-step wall times with a device synchronize after each step, after warm-up steps.
``--tiny`` runs the same code on CPU with tiny sizes (the suite runs it: tests/bench/test_gpu_check.py); its
compile arm uses dynamo's ``eager`` backend, so no inductor build is timed there.

    python bench/gpu_check.py --out bench/results          # writes gpu_check_<device>.json
    python bench/gpu_check.py --tiny                       # CPU, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import statistics
import struct
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # curricurun from this tree: the device runs it uninstalled (README "Run on a GPU")
PHOTOS = REPO / ".gpu-wheels" / "photos"  # built by `make gpu-wheels` (the device has no scikit-image)
PEAK_BF16_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4, "GH200": 989.4}
FULL = {"var_batches": (160, 128, 96, 64, 32), "depth": 16, "patch_nums": (1, 2, 3, 4, 5, 6, 8, 10, 13, 16),
        "vocab": 4096, "cvae": 32, "classes": 1000, "steps": 8, "warmup": 3, "resnet": "resnet50",
        "sides": (96, 160, 224), "resnet_batch": 128, "loader_images": 1024, "engine_size": 128, "engine_batch": 256,
        "engine_steps": 60, "engine_warmup": 10, "engine_workers": 8}  # fmt: skip
TINY = {"var_batches": (4,), "depth": 2, "patch_nums": (1, 2, 3, 4), "vocab": 64, "cvae": 8, "classes": 10, "steps": 2,
        "warmup": 1, "resnet": "test_resnet", "sides": (32, 48, 64), "resnet_batch": 4, "loader_images": 8,
        "engine_size": 32, "engine_batch": 8, "engine_steps": 8, "engine_warmup": 2,
        "engine_workers": 0}  # fmt: skip


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_step(step, device: torch.device, steps: int, warmup: int) -> float:
    """Median wall seconds of ``steps`` calls of ``step`` after ``warmup`` untimed ones."""
    times = []
    for index in range(warmup + steps):
        start = time.perf_counter()
        step()
        sync(device)
        if index >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_flops(device: torch.device, override: float | None) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, tflops in PEAK_BF16_TFLOPS.items():  # "H100 PCIe" before "H100"
        if all(word in name for word in key.split()):
            return tflops * 1e12
    return None


def counted_flops(step_forward_backward) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step_forward_backward()
    return counter.get_total_flops()


def training_step(model, optimizer, loss_of):
    def step():
        optimizer.zero_grad(set_to_none=True)
        loss_of(model).backward()
        optimizer.step()

    return step


def var_sections(sizes, device, autocast, peak, compile_backend):
    """VAR-d16 full-sequence steps and the progressive stages' step-time ratios; the compiled arm to run later."""
    from curricurun.curriculum.base import StageState
    from curricurun.engine.device import optimizer_options
    from curricurun.setups.base import DataShape
    from curricurun.setups.var.setup import VarParams, VarSetup

    params = VarParams(depth=sizes["depth"], patch_nums=sizes["patch_nums"], vocab_size=sizes["vocab"],
                       token_channels=sizes["cvae"], num_classes=sizes["classes"], in_channels=3)  # fmt: skip
    setup = VarSetup(params, DataShape(3, sizes["classes"], 16 * sizes["patch_nums"][-1]))
    torch.manual_seed(0)
    model = setup.build_model().to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), **optimizer_options("adamw"))
    ends = setup.config.token_ends
    for batch_size in sizes["var_batches"]:  # the largest that fits
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        batch = {k: v.to(device) for k, v in setup.measure_batch(StageState(), batch_size).items()}

        def loss_of(m, stage=StageState(), batch=batch):
            with autocast():
                return setup.training_loss(m, batch, stage)

        step = training_step(model, optimizer, loss_of)
        try:
            eager = median_step(step, device, sizes["steps"], sizes["warmup"])
            break
        except torch.OutOfMemoryError:
            optimizer.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
    flops = counted_flops(lambda: loss_of(model).backward())
    optimizer.zero_grad(set_to_none=True)
    result = {"batch": batch_size, "tokens": ends[-1], "params": sum(p.numel() for p in model.parameters()),
              "flops_per_step": flops, "eager": _rates(eager, batch_size, flops, peak)}  # fmt: skip
    if device.type == "cuda":
        total = torch.cuda.mem_get_info(device)[1]
        result["memory_fraction"] = round(torch.cuda.max_memory_allocated(device) / total, 3)
    stages = []
    for index in range(len(ends)):
        staged = training_step(model, optimizer, lambda m, s=StageState(scale_index=index): loss_of(m, s))
        seconds = median_step(staged, device, sizes["steps"], sizes["warmup"])
        stages.append({"stage": index, "tokens": ends[index], "token_ratio": round(ends[index] / ends[-1], 4),
                       "step_s": seconds})  # fmt: skip
    for stage in stages:
        stage["time_ratio"] = round(stage["step_s"] / stages[-1]["step_s"], 4)

    def compiled_arm() -> dict:  # run last: inductor's build of VAR-d16 is the one long wait
        compiled_model = torch.compile(model, backend=compile_backend)
        start = time.perf_counter()
        training_step(compiled_model, optimizer, loss_of)()  # the first call compiles forward and backward
        sync(device)
        compile_s = time.perf_counter() - start
        step = training_step(compiled_model, optimizer, loss_of)
        seconds = median_step(step, device, sizes["steps"], sizes["warmup"])
        timing = _rates(seconds, batch_size, flops, peak)
        return {**timing, "compile_s": round(compile_s, 1), "backend": compile_backend}

    return result, stages, compiled_arm


def _rates(seconds: float, batch: int, flops: int, peak: float | None) -> dict:
    return {"step_s": seconds, "images_per_s": round(batch / seconds, 2),
            "mfu": None if peak is None else round(flops / seconds / peak, 4)}  # fmt: skip


def resnet_section(sizes, device, autocast, photos: Path, workers: int) -> dict:
    """ResNet-50 step time per ET++ stage side, and the imagenet pipeline's loader rate at that side."""
    import timm

    from curricurun.engine.device import to_memory_format

    torch.manual_seed(0)
    model = to_memory_format(timm.create_model(sizes["resnet"], num_classes=1000), True).to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    batch = sizes["resnet_batch"]
    stages = []
    for side in sizes["sides"]:
        images = torch.randn(batch, 3, side, side, device=device).contiguous(memory_format=torch.channels_last)
        labels = torch.randint(1000, (batch,), device=device)

        def loss_of(m, images=images, labels=labels):
            with autocast():
                return torch.nn.functional.cross_entropy(m(images), labels)

        seconds = median_step(training_step(model, optimizer, loss_of), device, sizes["steps"], sizes["warmup"])
        loader = loader_rate(photos, side, sizes["loader_images"], workers)
        model_rate = batch / seconds
        stages.append({"side": side, "step_s": seconds, "model_images_per_s": round(model_rate, 1),
                       "loader_images_per_s": round(loader, 1), "loader_keeps_up": loader >= model_rate})  # fmt: skip
    full = stages[-1]
    for stage in stages:
        stage["pixel_ratio"] = round((stage["side"] / full["side"]) ** 2, 4)
        stage["time_ratio"] = round(stage["step_s"] / full["step_s"], 4)
        stage["fidelity"] = round(stage["pixel_ratio"] / stage["time_ratio"], 3)
    return {"model": sizes["resnet"], "batch": batch, "loader_workers": workers, "stages": stages}


def loader_rate(photos: Path, side: int, count: int, workers: int) -> float:
    """Images/s of the ``imagenet`` pipeline (ET++ order: RandAugment m 9 at full size, low-pass crop to the side)."""
    from torch.utils.data import DataLoader

    from curricurun.data import pipelines
    from curricurun.data.sources import ImageClassificationData

    # The files straight into the split object (load_split("local") reads folders through `datasets`, which the
    # device does not have); decoding is curricurun's own either way (data/decode.py).
    files = sorted(photos.glob("train/*/*.JPEG"))
    names = sorted({file.parent.name for file in files})
    labels = np.array([names.index(file.parent.name) for file in files], dtype=np.int64)
    data = ImageClassificationData(labels, len(names), 3, names, f"photos in {photos}", paths=[str(f) for f in files])
    pipeline = pipelines.build({"name": "imagenet"})
    full = 224
    bandwidth = None if side >= full else side

    class Samples(torch.utils.data.Dataset):
        def __len__(self):
            return count

        def __getitem__(self, index):
            return pipeline.train_sample(data, index % len(data), full, 9.0, bandwidth, index)

    loader = DataLoader(Samples(), batch_size=32, num_workers=workers, collate_fn=len)
    start = time.perf_counter()
    done = sum(loader)
    return done / (time.perf_counter() - start)


def write_idx_split(photos: Path, folder: Path, size: int, count: int) -> None:
    """Grey ``size``² crops of the photo JPEGs as an IDX train split (decoded once: the model, not the loader)."""
    from PIL import Image

    files = sorted(photos.glob("train/*/*.JPEG"))
    classes = sorted({file.parent.name for file in files})
    rng = np.random.default_rng(0)
    images, labels = np.empty((count, size, size), np.uint8), np.empty(count, np.uint8)
    for index in range(count):
        file = files[index % len(files)]
        with Image.open(file) as picture:
            grey = picture.convert("L")
            left, top = int(rng.integers(0, grey.width - 256)), int(rng.integers(0, grey.height - 256))
            images[index] = np.asarray(grey.crop((left, top, left + 256, top + 256)).resize((size, size)))
        labels[index] = classes.index(file.parent.name)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array, code in (("train-images-idx3-ubyte.gz", images, 3), ("train-labels-idx1-ubyte.gz", labels, 1)):
        header = struct.pack(">I", 0x0800 | code) + b"".join(struct.pack(">I", d) for d in array.shape)
        (folder / name).write_bytes(gzip.compress(header + array.tobytes(), compresslevel=1))


def engine_vs_hand(sizes, photos: Path, precision: str, scratch: Path) -> dict:
    """``train()`` and a hand-written Accelerate loop: images/s between optimizer steps (start-up excluded)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    folder, steps, batch = scratch / "idx", sizes["engine_steps"], sizes["engine_batch"]
    write_idx_split(photos, folder, sizes["engine_size"], batch * 4)
    stamps: list[float] = []
    handle = register_optimizer_step_post_hook(lambda *_: stamps.append(time.perf_counter()))
    rates = {}
    try:
        for name, run in (("hand", hand_loop), ("engine", engine_run), ("hand", hand_loop), ("engine", engine_run)):
            stamps.clear()
            run(sizes, folder, precision, scratch)
            kept = stamps[sizes["engine_warmup"] :]
            rates.setdefault(name, []).append(batch * (len(kept) - 1) / (kept[-1] - kept[0]))
    finally:
        handle.remove()
    engine, hand = statistics.median(rates["engine"]), statistics.median(rates["hand"])
    return {"model": sizes["resnet"], "image_size": sizes["engine_size"], "batch": batch, "steps": steps,
            "engine_images_per_s": round(engine, 1), "hand_images_per_s": round(hand, 1),
            "ratio": round(engine / hand, 4), "goal": 0.98}  # fmt: skip


def engine_run(sizes, folder: Path, precision: str, scratch: Path) -> None:
    from curricurun.engine.trainer import train
    from curricurun.recipe import recipe_from_dict

    recipe = recipe_from_dict({
        "name": "gpu-check", "seed": 0, "setup": {"name": "classification", "model": sizes["resnet"]},
        "data": {"source": "idx", "path": str(folder), "eval_split": None, "image_size": sizes["engine_size"],
                 "num_workers": sizes["engine_workers"]},
        "batch": {"per_device": sizes["engine_batch"]}, "optim": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
        "schedule": {"shape": "constant"},
        "training": {"steps": sizes["engine_steps"], "precision": precision, "channels_last": True, "tf32": True,
                     "cudnn_benchmark": True, "log_every_steps": 50, "eval": {"every_epochs": None},
                     "checkpoint": {"every_steps": 10**9}},
    }, source="bench/gpu_check.py")  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        train(recipe, recipe.resolved, str(tempfile.mkdtemp(dir=scratch)))


class NormalisedImages(torch.utils.data.Dataset):
    """Per sample, as the engine's loader does: uint8 → ``(x/255 − 0.5)/0.5`` (bench/engine_overhead.py's arm)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = torch.from_numpy(self.images[index]).unsqueeze(0).float().div_(255.0).sub_(0.5).div_(0.5)
        return image, int(self.labels[index])


def hand_loop(sizes, folder: Path, precision: str, scratch: Path) -> None:
    """What a user writes: prepare, then forward, backward, step, zero_grad; the same normalisation as the engine."""
    import timm
    from accelerate import Accelerator
    from torch.utils.data import DataLoader, RandomSampler

    from curricurun.data.idx import load_idx_split

    accelerator = Accelerator(mixed_precision=None if precision == "no" else precision,
                              cpu=not torch.cuda.is_available())  # fmt: skip
    images, labels = load_idx_split(folder, "train")
    data = NormalisedImages(images, labels)
    torch.manual_seed(0)
    model = timm.create_model(sizes["resnet"], in_chans=1, num_classes=int(labels.max()) + 1)
    model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    model, optimizer = accelerator.prepare(model, optimizer)
    sampler = RandomSampler(data, replacement=True, num_samples=sizes["engine_batch"] * sizes["engine_steps"])
    loader = DataLoader(data, batch_size=sizes["engine_batch"], sampler=sampler, drop_last=True,
                        num_workers=sizes["engine_workers"], pin_memory=torch.cuda.is_available())  # fmt: skip
    model.train()
    for x, y in loader:
        x = x.to(accelerator.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with accelerator.autocast():
            loss = torch.nn.functional.cross_entropy(model(x), y.to(accelerator.device, non_blocking=True))
        accelerator.backward(loss)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    accelerator.end_training()


COMPILE_ALLOWANCE_S = 120  # inductor's build of VAR-d16 forward + backward, with margin (unmeasured on a GPU)


def section(result: dict, name: str, measure):
    """Run one measurement; a failure is ``{"error": ...}`` (returned, and set in ``result``), so an unattended run
    keeps the other sections."""
    start = time.perf_counter()
    try:
        return measure()
    except Exception as error:  # noqa: BLE001 - any failure of one section must not lose the other sections
        first_line = str(error).splitlines()[0] if str(error) else ""
        result[name] = {"error": f"{type(error).__name__}: {first_line}"}
        return result[name] if name != "var_d16" else None
    finally:
        seconds = round(time.perf_counter() - start, 1)
        result.setdefault("section_s", {})[name] = seconds
        print(f"gpu_check: {name} took {seconds} s", file=sys.stderr, flush=True)


def table(result: dict) -> str:
    """The short table printed before the JSON (a failed section prints its error)."""
    lines = []
    var = result.get("var_d16", {})
    for arm in ("eager", "compiled"):
        row = var.get(arm, var if "error" in var else {"skipped": "not run"})
        if "step_s" not in row:
            lines.append(f"VAR {arm}: {row.get('error') or row.get('skipped')}")
            continue
        mfu = "n/a" if row["mfu"] is None else f"{100 * row['mfu']:.1f} %"
        lines.append(f"VAR d{result['sizes']['depth']} B={var['batch']} {arm:<8} {1000 * row['step_s']:8.1f} ms/step"
                     f" {row['images_per_s']:9.1f} img/s  MFU {mfu}")  # fmt: skip
    for stage in result.get("var_stages", []):
        lines.append(f"VAR stage {stage['stage']:<2} tokens {stage['tokens']:>4}  time ratio {stage['time_ratio']:.3f}"
                     f"  token ratio {stage['token_ratio']:.3f}")  # fmt: skip
    resnet = result.get("resnet50", {})
    for stage in resnet.get("stages", []):
        lines.append(f"{resnet['model']} side {stage['side']:>3}  time ratio {stage['time_ratio']:.3f}  pixel ratio"
                     f" {stage['pixel_ratio']:.3f}  fidelity {stage['fidelity']:.3f}  model"
                     f" {stage['model_images_per_s']:.0f} img/s"
                     f"  loader {stage['loader_images_per_s']:.0f} img/s")  # fmt: skip
    both = result.get("engine_vs_hand", {})
    if "ratio" in both:
        lines.append(f"engine / hand-written Accelerate loop: {both['engine_images_per_s']:.0f} /"
                     f" {both['hand_images_per_s']:.0f} img/s = {both['ratio']:.3f} (goal {both['goal']})")  # fmt: skip
    failed = {name: value for name, value in result.items() if isinstance(value, dict) and "error" in value}
    lines += [f"{name}: {value['error']}" for name, value in failed.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny sizes on CPU (the suite's check)")
    parser.add_argument("--out", type=Path, help="folder for gpu_check_<device>.json")
    parser.add_argument("--photos", type=Path, default=PHOTOS, help="JPEG folder (train/<class>/*.JPEG)")
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak of an unlisted GPU")
    parser.add_argument("--budget-s", type=float, default=280, help="skip the compile arm when it would not fit")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    sizes = TINY if args.tiny else FULL
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    if device.type == "cpu" and not args.tiny:
        raise SystemExit("gpu_check: no CUDA GPU here; use --tiny for the CPU check")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    dtype, backend = torch.bfloat16, "eager" if args.tiny else "inductor"

    def autocast():
        return torch.autocast(device.type, dtype=dtype)

    with tempfile.TemporaryDirectory(prefix="gpu-check-") as scratch:
        photos = args.photos
        if not (photos / "train").is_dir():  # build them (needs scikit-image: `make gpu-wheels` does it here)
            sys.path.insert(0, str(REPO / "tests"))
            from photo_folder import write_photo_folder

            photos = Path(scratch) / "photos"
            write_photo_folder(photos, 16 if args.tiny else 256)
        workers = 0 if args.tiny else min(16, os.cpu_count() or 1)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
        result = {"device": name, "tiny": args.tiny, "torch": torch.__version__, "sizes": sizes,
                  "peak_bf16_tflops": (peak_flops(device, args.peak_tflops) or 0) / 1e12 or None}  # fmt: skip
        peak = peak_flops(device, args.peak_tflops)
        var = section(result, "var_d16", lambda: var_sections(sizes, device, autocast, peak, backend))
        if var is not None:
            result["var_d16"], result["var_stages"], compiled_arm = var
        resnet = lambda: resnet_section(sizes, device, autocast, photos, workers)  # noqa: E731
        result["resnet50"] = section(result, "resnet50", resnet)
        result["engine_vs_hand"] = section(result, "engine_vs_hand",
                                           lambda: engine_vs_hand(sizes, photos, "bf16", Path(scratch)))  # fmt: skip
        if var is not None and time.perf_counter() - started > args.budget_s - COMPILE_ALLOWANCE_S:
            result["var_d16"]["compiled"] = {"skipped": f"less than {COMPILE_ALLOWANCE_S} s of --budget-s left"}
        elif var is not None:
            result["var_d16"]["compiled"] = section(result["var_d16"], "compiled", compiled_arm)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(table(result))
    print(json.dumps(result))
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        slug = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
        (args.out / f"gpu_check_{slug}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
