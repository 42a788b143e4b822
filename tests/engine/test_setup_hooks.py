"""The optional setup hooks: pictures after each evaluation, export at the end, and `curricurun sample`.

A third-party setup (installed through the `curricurun.setups` entry point, as a user would) implements the hooks
on top of the classification setup, so the test exercises the engine's wiring, not a model family.
"""

from __future__ import annotations

import textwrap

import pytest
import torch
from engine_helpers import needs_fashion_mnist, run_cli, small_recipe
from PIL import Image
from safetensors.torch import load_file

from curricurun.engine.evaluation import _all_reduce_sums

PLUGIN = textwrap.dedent(
    '''
    """Classification plus the optional hooks; `sample` paints class c as grey level c / 10 (plumbing check)."""
    from typing import ClassVar

    import torch
    from safetensors.torch import save_file

    from curricurun.images import save_grid, to_unit_range
    from curricurun.setups.classification import ClassificationSetup


    class HookedSetup(ClassificationSetup):
        name: ClassVar[str] = "hooked"
        summary: ClassVar[str] = "classification with every optional hook"

        def after_evaluation(self, model, batch, step, run_dir):
            assert not model.training and not torch.is_grad_enabled()
            save_grid(to_unit_range(batch["image"]), run_dir / f"pictures-{step:08d}.png", columns=8)

        def export(self, model, run_dir):
            path = run_dir / "exported.safetensors"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
            return path

        def sample(self, model, classes, seed, options):
            side = 8
            grey = torch.tensor([c / 10 for c in classes for _ in range(options.per_class)])
            return grey[:, None, None, None].expand(-1, 1, side, side).clone()
    '''
)


def _install(root):
    (root / "hooked_setup.py").write_text(PLUGIN)
    info = root / "hooked_setup-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: hooked-setup\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[curricurun.setups]\nhooked = hooked_setup:HookedSetup\n")


@pytest.fixture
def plugin_env(tmp_path):
    root = tmp_path / "site"
    root.mkdir()
    _install(root)
    return {"PYTHONPATH": str(root)}


def _recipe(tmp_path, **training):
    return small_recipe(
        tmp_path,
        setup={"name": "hooked", "model": "test_resnet", "num_classes": 10, "in_channels": 1},
        data={"max_eval_samples": 40},
        training={"epochs": 1, "eval": {"every_steps": 20}, **training},
    )


@needs_fashion_mnist
@pytest.mark.slow
def test_pictures_follow_every_evaluation_and_the_export_holds_the_final_weights(tmp_path, plugin_env):
    run = tmp_path / "run"
    run_cli(["train", str(_recipe(tmp_path)), "--output-dir", str(run)], env=plugin_env)
    # 640 / 16 = 40 steps; evaluations at steps 20 and 40, each with a grid of the first 16 eval images.
    pictures = sorted(p.name for p in run.glob("pictures-*.png"))
    assert pictures == ["pictures-00000020.png", "pictures-00000040.png"]
    width, height = Image.open(run / pictures[0]).size
    assert (width, height) == (8 * 30 + 2, 2 * 30 + 2)  # 8 columns × 2 rows of 28-px tiles, 2-px padding
    exported = load_file(str(run / "exported.safetensors"))
    final = load_file(str(run / "checkpoint-00000040" / "model.safetensors"))
    assert exported.keys() == final.keys()
    assert all(torch.equal(exported[k], final[k]) for k in final)


@needs_fashion_mnist
@pytest.mark.slow
def test_a_run_paused_by_stop_after_exports_nothing_and_sample_writes_the_requested_grid(tmp_path, plugin_env):
    run = tmp_path / "run"
    recipe = _recipe(tmp_path)
    run_cli(["train", str(recipe), "--output-dir", str(run), "--stop-after", "10"], env=plugin_env)
    assert not (run / "exported.safetensors").exists()

    grid = tmp_path / "grid.png"
    args = ["sample", str(recipe), "--checkpoint", str(run), "--classes", "0,5", "--per-class", "3"]
    run_cli([*args, "--out", str(grid)], env=plugin_env)
    image = Image.open(grid)
    # 8-px samples are upscaled ×16 to 128 px; 3 columns × 2 rows with 2-px padding.
    assert image.size == (3 * 130 + 2, 2 * 130 + 2)
    centre_of_row = [image.getpixel((2 + 64, 2 + 64)), image.getpixel((2 + 64, 132 + 64))]
    assert centre_of_row == [0, round(0.5 * 255)]
    assert image.mode == "L"


def test_sample_refuses_a_setup_that_does_not_generate_and_bad_classes(tmp_path):
    from curricurun.cli import run

    recipe = small_recipe(
        tmp_path, setup={"name": "classification", "model": "test_resnet", "num_classes": 10, "in_channels": 1}
    )
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "model.safetensors").write_bytes(b"")
    assert run(["sample", str(recipe), "--checkpoint", str(tmp_path / "ckpt")]) == 2
    assert run(["sample", str(recipe), "--checkpoint", str(tmp_path / "nowhere")]) == 2
    assert run(["sample", str(recipe), "--checkpoint", str(tmp_path / "ckpt"), "--classes", "a,b"]) == 2


class _OneProcess:
    num_processes, device = 1, torch.device("cpu")


def test_evaluation_sums_of_any_shape_come_back_with_their_shapes():
    totals = {"count": torch.tensor(4.0), "histogram": torch.arange(6.0).reshape(2, 3)}
    summed = _all_reduce_sums(totals, _OneProcess())
    assert summed["count"] == 4.0 and isinstance(summed["count"], float)
    assert torch.equal(summed["histogram"], torch.arange(6.0, dtype=torch.float64).reshape(2, 3))
