"""``imagenet``'s ``decode: torchvision`` path (issue 15), run on the CPU decoder through the same code as ``cuda``.

Tolerances measured on tests/photo_folder.py's JPEGs (500×375 / 375×500, q90), in grey levels (0-255), on this
module's 12 photos and on 40 of bench/loader_throughput.py's: eval (decode_jpeg + antialiased tensor resize vs PIL
decode + PIL resize) max |diff| 1.96 and 2.04; train without RandAugment max 2.0, per-image mean ≤ 0.15 (crop to
224, or 224 then Lanczos to 96) and ≤ 0.004 (crop straight to 96). Bounds: max 3, mean 0.3. RandAugment turns a
one-level difference at an op's threshold (solarize, posterize) into a full swing on a few pixels (max 202): the
per-image mean stays ≤ 0.15, bounded at 0.5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from photo_folder import write_photo_folder
from torch.utils.data import DataLoader

from curricurun.data import load_split, pipelines
from curricurun.data.decode import CorruptImageError, encoded_jpeg
from curricurun.data.sampler import SampleKey
from curricurun.data.staged import StagedDataset, checked_batch, collate
from curricurun.errors import UserError

GREY = 255 * torch.tensor((0.229, 0.224, 0.225)).view(3, 1, 1)  # ImageNet std: normalised units to grey levels


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photo_folder(root, 12, classes=3, splits={"train": 1.0})
    return load_split("local", str(root), "train")


def _grey(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    assert a.shape == b.shape and a.device.type == b.device.type == "cpu"
    return (a - b).abs() * GREY


def test_encoded_jpeg_is_the_file_on_disk_and_none_for_a_png(photos, tmp_path):
    raw, name = encoded_jpeg(photos, 3)
    assert name == photos._paths[3] and raw == Path(photos._paths[3]).read_bytes()
    arrays = load_split("local", str(_png_folder(tmp_path)), "train")
    assert encoded_jpeg(arrays, 0) is None


def _png_folder(root):
    from PIL import Image

    rng = np.random.default_rng(0)
    for k, label in enumerate("ab"):
        folder = root / "png" / "train" / label
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    return root / "png"


def test_eval_matches_the_pil_path_within_three_grey_levels(photos):
    pil = pipelines.build({"name": "imagenet"})
    tv = pipelines.build({"name": "imagenet", "decode": "torchvision"})
    worst = [float(_grey(pil.eval_sample(photos, i, 224), tv.eval_sample(photos, i, 224)).max()) for i in range(12)]
    assert max(worst) <= 3.0, worst
    assert max(worst) > 0  # a different decoder and resampler: not PIL's bytes (else this test checks nothing)


@pytest.mark.parametrize(("bandwidth", "augment_at"), [(None, "base"), (96, "stage"), (96, "base")])
def test_train_draws_the_same_crop_and_flip_as_the_pil_path(photos, bandwidth, augment_at):
    """Same seeds, same timm box, same flip draw: only the decoder and the resampler differ (full-size PIL decode)."""
    pil = pipelines.build({"name": "imagenet", "augment_at": augment_at, "reduced_decode": False})
    tv = pipelines.build({"name": "imagenet", "augment_at": augment_at, "decode": "torchvision"})
    for index in range(12):
        diff = _grey(pil.train_sample(photos, index, 224, None, bandwidth, index), tv.train_sample(
            photos, index, 224, None, bandwidth, index))  # fmt: skip
        assert float(diff.max()) <= 3.0 and float(diff.mean()) < 0.3, (index, float(diff.max()), float(diff.mean()))


def test_randaugment_on_the_host_after_the_tensor_crop_stays_close(photos):
    pil = pipelines.build({"name": "imagenet", "reduced_decode": False})
    tv = pipelines.build({"name": "imagenet", "decode": "torchvision"})
    means = [float(_grey(pil.train_sample(photos, i, 224, 9.0, None, i), tv.train_sample(
        photos, i, 224, 9.0, None, i)).mean()) for i in range(12)]  # fmt: skip
    assert max(means) < 0.5, means


def test_same_key_gives_the_same_tensor_inline_and_from_workers(photos):
    pipeline = pipelines.build({"name": "imagenet", "magnitude": 9, "decode": "torchvision"})
    dataset = StagedDataset(photos, pipeline, 160)
    keys = [[SampleKey(i, None, None, 96 if i % 2 else None, 31 * i + 5)] for i in range(6)]
    inline = [collate([dataset[key] for key in batch])["image"] for batch in keys]
    again = [collate([dataset[key] for key in batch])["image"] for batch in keys]
    workers = DataLoader(dataset, batch_sampler=keys, collate_fn=collate, num_workers=2, multiprocessing_context="fork")
    for ours, same, theirs in zip(inline, again, (checked_batch(b)["image"] for b in workers), strict=True):
        assert torch.equal(ours, same) and torch.equal(ours, theirs)
    other = dataset[SampleKey(0, None, None, None, 6)]["image"]
    assert not torch.equal(inline[0][0], other)  # the seed is in the key


def test_non_jpeg_files_take_the_pil_path(tmp_path):
    data = load_split("local", str(_png_folder(tmp_path)), "train")
    pil = pipelines.build({"name": "imagenet"})
    tv = pipelines.build({"name": "imagenet", "decode": "torchvision"})
    assert torch.equal(pil.train_sample(data, 1, 224, 5.0, None, 3), tv.train_sample(data, 1, 224, 5.0, None, 3))


def test_truncated_jpeg_is_one_line_naming_the_file(tmp_path):
    write_photo_folder(tmp_path, 4, classes=2)
    data = load_split("local", str(tmp_path), "train")
    victim = data._paths[2]
    Path(victim).write_bytes(Path(victim).read_bytes()[:2000])  # truncated mid-scan
    pipeline = pipelines.build({"name": "imagenet", "decode": "torchvision"})
    with pytest.raises(CorruptImageError) as caught:
        pipeline.eval_sample(data, 2, 96)
    message = str(caught.value)
    assert "\n" not in message and f"image 2 ('{victim}')" in message and "truncated" in message
    assert "decode_jpeg.cpp" not in message


def test_cuda_needs_torchvision_decode_and_no_workers_at_validate():
    from curricurun.errors import RecipeError
    from curricurun.recipe import load_recipe

    recipe = "recipes/efficienttrain_baseline_resnet50.yaml"
    cuda = ["data.pipeline.decode=torchvision", "data.pipeline.decode_device=cuda"]
    with pytest.raises(RecipeError, match=r"decode_device 'cuda' needs decode: torchvision") as caught:
        load_recipe(recipe, ["data.pipeline.decode_device=cuda", "data.num_workers=0"])
    assert "\n" not in str(caught.value).strip()
    with pytest.raises(RecipeError, match=r"data\.num_workers: .*main process: needs 0, found 4"):
        load_recipe(recipe, [*cuda, "data.num_workers=4"])
    loaded = load_recipe(recipe, [*cuda, "data.num_workers=0"])  # validate works on a machine without CUDA
    assert loaded.data.pipeline.params["decode_device"] == "cuda"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_cuda_without_a_device_is_refused_in_one_line_when_the_data_is_loaded(photos):
    spec = {"name": "imagenet", "decode": "torchvision", "decode_device": "cuda"}
    assert "torchvision decode on cuda" in pipelines.build(spec).describe()  # inspect-schedule still describes it
    with pytest.raises(UserError, match=r"^data\.pipeline\.decode_device: 'cuda' needs a CUDA device") as caught:
        pipelines.build(spec, data=photos)
    assert "\n" not in str(caught.value)
