"""Named pipelines against their references, on real JPEGs (scikit-image photos at 500×375 / 375×500).

imagenet: timm's own create_transform given the same RNG state (train, and ET++'s Lanczos insert at index 3)
and timm's eval transform, to 1e-6. var / pyramid_flow: re-derivations of VAR utils/data.py:17-27 and
Pyramid-Flow dataset/dataset_cls.py:81-114 with PIL, and the references' own torchvision op lists (VAR's train
list with and without ``--hflip``, its val list; Pyramid-Flow's random and centre crop modes) given the same
seed. Plus per-sample determinism across worker counts, the Pillow 13 posterize shim, reduced-scale decoding and
undecodable files.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from photo_folder import write_photo_folder
from PIL import Image
from torch.utils.data import DataLoader

from curricurun.data import load_split, pipelines
from curricurun.data.decode import CorruptImageError
from curricurun.data.pipelines.randaugment import posterize_keeping_zero_bits, timm_rand_augment
from curricurun.data.sampler import SampleKey
from curricurun.data.staged import StagedDataset, checked_batch, collate


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    root = tmp_path_factory.mktemp("photos")
    write_photo_folder(root, 12, classes=3, splits={"train": 1.0})
    return load_split("local", str(root), "train")


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed([seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF])
    torch.default_generator.manual_seed(seed)


def _timm_train(size: int = 224, magnitude: int = 9):
    from timm.data import auto_augment, create_transform

    transform = create_transform(
        size, is_training=True, auto_augment=f"rand-m{magnitude}-mstd0.5-inc1", interpolation="bicubic"
    )
    for op in transform.transforms[2].ops:  # the same Pillow 13 shim on the reference side
        if op.aug_fn is auto_augment.posterize:
            op.aug_fn = posterize_keeping_zero_bits
    return transform


def _pil(data, index: int) -> Image.Image:
    return Image.open(data._paths[index]).convert("RGB")


def test_imagenet_train_equals_timms_create_transform_given_the_same_seed(photos):
    pipeline = pipelines.build({"name": "imagenet"})
    reference = _timm_train()
    for index in range(len(photos)):
        for seed in (index, 1000 + index):
            ours = pipeline.train_sample(photos, index, 224, 9.0, None, seed)
            _seed_all(seed)
            torch.testing.assert_close(ours, reference(_pil(photos, index)), atol=1e-6, rtol=0)


def test_imagenet_low_frequency_stage_is_ets_lanczos_insert_after_randaugment(photos):
    """ET++ datasets_buffer.py L75-82: transforms.Resize(B, LANCZOS) inserted at index 3 of timm's train list."""
    from torchvision import transforms

    pipeline = pipelines.build({"name": "imagenet"})
    reference = _timm_train(magnitude=3)
    reference.transforms.insert(3, transforms.Resize(96, interpolation=transforms.InterpolationMode.LANCZOS))
    for index in range(0, len(photos), 2):
        ours = pipeline.train_sample(photos, index, 224, 3.0, 96, 7 + index)
        _seed_all(7 + index)
        expected = reference(_pil(photos, index))
        assert ours.shape == expected.shape == (3, 96, 96)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)


def test_imagenet_eval_equals_timms_eval_transform(photos):
    from timm.data import create_transform

    reference = create_transform(224, is_training=False, crop_pct=0.875, interpolation="bicubic")
    pipeline = pipelines.build({"name": "imagenet"})
    for index in range(len(photos)):
        torch.testing.assert_close(
            pipeline.eval_sample(photos, index, 224), reference(_pil(photos, index)), atol=1e-6, rtol=0
        )


def test_var_equals_lanczos_short_side_288_then_crop_256(photos):
    pipeline = pipelines.build({"name": "var"})
    for index in range(0, len(photos), 3):
        picture = _pil(photos, index)
        width, height = picture.size
        short_is_height = height <= width
        size = (int(288 * width / height), 288) if short_is_height else (288, int(288 * height / width))
        resized = np.asarray(picture.resize(size, Image.Resampling.LANCZOS), dtype=np.float32) / 255
        top, left = round((size[1] - 256) / 2), round((size[0] - 256) / 2)
        centre = torch.from_numpy(resized[top : top + 256, left : left + 256]).permute(2, 0, 1) * 2 - 1
        torch.testing.assert_close(pipeline.eval_sample(photos, index, 256), centre, atol=1e-6, rtol=0)
        torch.default_generator.manual_seed(index)
        top = int(torch.randint(0, size[1] - 256 + 1, (1,)))
        left = int(torch.randint(0, size[0] - 256 + 1, (1,)))
        crop = torch.from_numpy(resized[top : top + 256, left : left + 256]).permute(2, 0, 1) * 2 - 1
        ours = pipeline.train_sample(photos, index, 256, None, None, index)
        torch.testing.assert_close(ours, crop, atol=1e-6, rtol=0)


def test_pyramid_flow_is_bicubic_short_side_then_random_crop_into_minus_one_one(photos):
    pipeline = pipelines.build({"name": "pyramid_flow"})
    picture = _pil(photos, 1)
    width, height = picture.size
    size = (int(128 * width / height), 128) if height <= width else (128, int(128 * height / width))
    resized = np.asarray(picture.resize(size, Image.Resampling.BICUBIC), dtype=np.float32) / 255
    torch.default_generator.manual_seed(5)
    top = int(torch.randint(0, size[1] - 128 + 1, (1,)))
    left = int(torch.randint(0, size[0] - 128 + 1, (1,)))
    expected = (torch.from_numpy(resized[top : top + 128, left : left + 128]).permute(2, 0, 1) - 0.5) / 0.5
    torch.testing.assert_close(pipeline.train_sample(photos, 1, 128, None, None, 5), expected, atol=1e-6, rtol=0)


def _var_reference(final: int, hflip: bool):
    """VAR's own transform lists (utils/data.py:17-27), rebuilt with the torchvision ops it names."""
    from torchvision import transforms
    from torchvision.transforms import InterpolationMode

    mid = round(1.125 * final)
    tail = [transforms.ToTensor(), lambda x: x.add(x).add_(-1)]  # normalize_01_into_pm1 (utils/data.py:8-9)
    train = [transforms.Resize(mid, interpolation=InterpolationMode.LANCZOS), transforms.RandomCrop((final, final))]
    if hflip:
        train.insert(0, transforms.RandomHorizontalFlip())
    val = [transforms.Resize(mid, interpolation=InterpolationMode.LANCZOS), transforms.CenterCrop((final, final))]
    return transforms.Compose(train + tail), transforms.Compose(val + tail)


@pytest.mark.parametrize("hflip", [False, True])
def test_var_equals_vars_own_transform_lists_given_the_same_seed(photos, hflip):
    pipeline = pipelines.build({"name": "var", "hflip": hflip})
    train, val = _var_reference(128, hflip)
    flips = set()
    for index in range(len(photos)):
        torch.default_generator.manual_seed(40 + index)
        if hflip:
            flips.add(bool(torch.rand(1) < 0.5))
            torch.default_generator.manual_seed(40 + index)
        expected = train(_pil(photos, index))
        ours = pipeline.train_sample(photos, index, 128, None, None, 40 + index)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
        torch.testing.assert_close(
            pipeline.eval_sample(photos, index, 128), val(_pil(photos, index)), atol=1e-6, rtol=0
        )
    assert flips == ({False, True} if hflip else set())  # both branches of the flip were compared


def _pyramid_flow_reference(picture: Image.Image, side: int, crop_mode: str) -> torch.Tensor:
    """``ImageTextDataset.__getitem__`` (Pyramid-Flow dataset/dataset_cls.py:81-114) for a square ``side`` bucket."""
    import math

    from torchvision import transforms

    width, height = picture.size  # get_resize_size(orig=(w, h), tgt=(side, side)), L81-88: same-sign branch
    resize_size = max(int(math.ceil(side * min(width, height) / max(width, height))), side)
    picture = transforms.functional.resize(
        picture, resize_size, interpolation=transforms.InterpolationMode.BICUBIC, antialias=True
    )
    if crop_mode == "random":
        picture = transforms.RandomCrop((side, side))(picture)
    else:
        picture = transforms.functional.center_crop(picture, (side, side))
    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,) * 3, (0.5,) * 3)])  # L56-61
    return to_tensor(picture)


def test_pyramid_flow_equals_its_image_text_dataset_transform_train_and_eval(photos):
    pipeline = pipelines.build({"name": "pyramid_flow"})
    for index in range(len(photos)):
        torch.default_generator.manual_seed(index)
        expected = _pyramid_flow_reference(_pil(photos, index), 96, "random")
        ours = pipeline.train_sample(photos, index, 96, None, None, index)
        torch.testing.assert_close(ours, expected, atol=1e-6, rtol=0)
        expected = _pyramid_flow_reference(_pil(photos, index), 96, "center")
        torch.testing.assert_close(pipeline.eval_sample(photos, index, 96), expected, atol=1e-6, rtol=0)


def test_reduced_decode_keeps_the_crop_geometry_within_a_few_grey_levels(photos):
    """Crop straight to B = 64 (augment_at: stage): crops ≥ 128 px decode at 1/2-1/8 scale; same picture."""
    exact = pipelines.build({"name": "imagenet", "augment_at": "stage", "reduced_decode": False})
    reduced = pipelines.build({"name": "imagenet", "augment_at": "stage"})
    differences = []
    for index in range(len(photos)):
        a = exact.train_sample(photos, index, 224, None, 64, index)
        b = reduced.train_sample(photos, index, 224, None, 64, index)
        differences.append(float((a - b).abs().mean()) * 0.226 * 255)  # back to grey levels
    assert np.median(differences) < 4.0, differences


def test_same_key_gives_the_same_tensor_for_any_worker_count_and_leaves_global_rngs_alone(photos):
    pipeline = pipelines.build({"name": "imagenet", "magnitude": 9})
    dataset = StagedDataset(photos, pipeline, 160)
    keys = [[SampleKey(i, None, None, 96 if i % 2 else None, 31 * i + 5)] for i in range(8)]
    torch.manual_seed(3)
    state = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    inline = [collate([dataset[key] for key in batch])["image"] for batch in keys]  # in this process
    assert random.getstate() == state[0] and np.array_equal(np.random.get_state()[1], state[1])
    assert torch.equal(torch.get_rng_state(), state[2])
    workers = DataLoader(dataset, batch_sampler=keys, collate_fn=collate, num_workers=2, multiprocessing_context="fork")
    for ours, theirs in zip(inline, (checked_batch(batch)["image"] for batch in workers), strict=True):
        assert torch.equal(ours, theirs)


def test_posterize_to_zero_bits_gives_the_black_image_older_pillow_gave():
    picture = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3) * 5)
    assert not np.asarray(posterize_keeping_zero_bits(picture, 0)).any()
    from PIL import ImageOps

    kept = np.asarray(posterize_keeping_zero_bits(picture, 2))
    assert np.array_equal(kept, np.asarray(ImageOps.posterize(picture, 2)))
    augment = timm_rand_augment(10, 1, magnitude_std=0, probability=1.0)
    posterize = next(op for op in augment.ops if op.name == "PosterizeIncreasing")
    assert not np.asarray(posterize(picture)).any()  # m = 10: 4 − int(10/10·4) = 0 bits kept


def _corrupt_folder(tmp_path):
    write_photo_folder(tmp_path, 6, classes=2)
    victim = sorted((tmp_path / "train").rglob("*.JPEG"))[3]
    victim.write_bytes(victim.read_bytes()[:2000])  # truncated mid-scan
    return load_split("local", str(tmp_path), "train"), victim


def test_truncated_jpeg_is_one_line_naming_the_file_and_index_even_from_a_worker(tmp_path):
    data, victim = _corrupt_folder(tmp_path)
    index = data._paths.index(str(victim))
    dataset = StagedDataset(data, pipelines.build({"name": "imagenet"}), 64)
    keys = [[SampleKey(i, None, None, None, i) for i in range(len(data))]]
    loader = DataLoader(dataset, batch_sampler=keys, collate_fn=collate, num_workers=1)
    with pytest.raises(CorruptImageError) as caught:
        checked_batch(next(iter(loader)))
    message = str(caught.value)
    assert "\n" not in message and f"image {index} ('{victim}')" in message and "truncated" in message


def test_skip_mode_replaces_an_undecodable_file_and_reports_it(tmp_path):
    data, victim = _corrupt_folder(tmp_path)
    index = data._paths.index(str(victim))
    dataset = StagedDataset(data, pipelines.build({"name": "var"}), 64, skip_corrupt=True)
    sample = dataset[SampleKey(index, None, None, None, 0)]
    assert sample["index"] == (index + 1) % len(data) and len(sample["skipped"]) == 1
    reported = []
    batch = checked_batch(collate([sample, dataset[SampleKey(0, None, None, None, 0)]]), reported.extend)
    assert "skipped" not in batch and str(victim) in reported[0]


def test_validate_rejects_an_unknown_pipeline_parameter_with_a_suggestion(tmp_path):
    from curricurun.errors import RecipeError
    from curricurun.recipe import load_recipe

    unknown = r"data\.pipeline\.magnitdue: unknown key 'magnitdue' \(did you mean 'magnitude'"
    with pytest.raises(RecipeError, match=unknown):
        load_recipe("recipes/efficienttrain_baseline_resnet50.yaml", ["data.pipeline.magnitdue=9"])
    with pytest.raises(RecipeError, match=r"data\.augment\.hflip: the 'imagenet' pipeline does not read it"):
        load_recipe("recipes/efficienttrain_baseline_resnet50.yaml", ["data.augment.hflip=true"])
