"""Loading splits from IDX files, local folders (save_to_disk, parquet, image folder) and the Hub code path."""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

from curricurun.data.idx import load_idx_split, read_idx
from curricurun.data.sources import load_split
from curricurun.errors import UserError

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
REPO_ROOT = Path(__file__).resolve().parents[2]

# Six 4x4 grey images, image k filled with 10·k plus a bright pixel at (k mod 4, 0); labels 0..2.
IMAGES = np.stack([np.full((4, 4), 10 * k, dtype=np.uint8) for k in range(6)])
for _k in range(6):
    IMAGES[_k, _k % 4, 0] = 255
LABELS = np.array([2, 0, 1, 2, 1, 0], dtype=np.uint8)
NAMES = ["T-shirt", "Trouser", "Pullover"]


def idx_bytes(values: np.ndarray, type_code: int = 0x08) -> bytes:
    """An IDX file: magic 0x00 0x00 <type> <ndim>, big-endian uint32 sizes, big-endian values."""
    header = bytes([0, 0, type_code, values.ndim]) + np.array(values.shape, dtype=">u4").tobytes()
    return header + values.astype(values.dtype.newbyteorder(">")).tobytes()


def write_idx_pair(folder: Path, prefix: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for kind, values in (("images-idx3-ubyte", images), ("labels-idx1-ubyte", labels)):
        data = idx_bytes(values)
        if gz:
            (folder / f"{prefix}-{kind}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / f"{prefix}-{kind}").write_bytes(data)


def tiny_dataset() -> datasets.Dataset:
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=NAMES)})
    return datasets.Dataset.from_dict({"image": list(IMAGES), "label": LABELS.tolist()}, features=features)


@pytest.fixture(autouse=True)
def private_hf_cache(tmp_path, monkeypatch):
    """parquet and imagefolder loads write an Arrow cache; keep it inside the test's tmp folder."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))


# IDX parsing ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True])
def test_read_idx_returns_the_written_uint8_array_raw_or_gzipped(tmp_path, gz):
    write_idx_pair(tmp_path, "train", IMAGES, LABELS, gz)
    suffix = ".gz" if gz else ""
    images = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    labels = read_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}")
    assert images.shape == (6, 4, 4) and images.dtype == np.uint8
    np.testing.assert_array_equal(images, IMAGES)
    np.testing.assert_array_equal(labels, LABELS)


def test_read_idx_decodes_big_endian_int32_values(tmp_path):
    # type 0x0C = int32; 258 is stored as 00 00 01 02, -2 as ff ff ff fe.
    path = tmp_path / "values-idx1"
    path.write_bytes(bytes([0, 0, 0x0C, 1, 0, 0, 0, 3]) + bytes.fromhex("00000102fffffffe00000007"))
    np.testing.assert_array_equal(read_idx(path), [258, -2, 7])


def test_truncated_idx_file_is_a_user_error_naming_the_file(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(IMAGES)[:-1])  # header says 6·4·4 = 96 data bytes; 95 remain
    with pytest.raises(UserError, match=r"train-images-idx3-ubyte holds 95 data bytes .* \(96 bytes\)"):
        read_idx(path)


def test_bad_magic_number_is_a_user_error(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x89PNG" + idx_bytes(IMAGES)[4:])
    with pytest.raises(UserError, match=r"is not an IDX file \(bad magic number 89504e47\)"):
        read_idx(path)


def test_corrupt_or_cut_gzip_is_a_user_error_naming_the_file(tmp_path):
    not_gzip = tmp_path / "train-images-idx3-ubyte.gz"
    not_gzip.write_bytes(idx_bytes(IMAGES))
    with pytest.raises(UserError, match=r"cannot read IDX file .*train-images-idx3-ubyte\.gz"):
        read_idx(not_gzip)
    cut = tmp_path / "t10k-images-idx3-ubyte.gz"
    cut.write_bytes(gzip.compress(idx_bytes(IMAGES))[:30])
    with pytest.raises(UserError, match=r"cannot read IDX file .*t10k-images-idx3-ubyte\.gz"):
        read_idx(cut)


def test_idx_test_split_reads_the_t10k_files_and_lists_splits_when_unknown(tmp_path):
    write_idx_pair(tmp_path, "train", IMAGES, LABELS, gz=True)
    write_idx_pair(tmp_path, "t10k", IMAGES[:2], LABELS[:2], gz=False)
    images, labels = load_idx_split(tmp_path, "test")
    assert images.shape == (2, 4, 4) and labels.dtype == np.int64
    with pytest.raises(UserError, match=r"data.split: unknown IDX split 'validation'; available: train, test"):
        load_idx_split(tmp_path, "validation")


def test_idx_label_count_must_match_image_count(tmp_path):
    write_idx_pair(tmp_path, "train", IMAGES, LABELS[:5], gz=False)
    with pytest.raises(UserError, match="has 6 images but train-labels-idx1-ubyte has 5 labels"):
        load_idx_split(tmp_path, "train")


def test_idx_split_without_its_files_names_the_missing_file(tmp_path):
    write_idx_pair(tmp_path, "train", IMAGES, LABELS, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match=r"needs train-labels-idx1-ubyte\[\.gz\]"):
        load_split("idx", str(tmp_path), "train")


def test_load_split_idx_exposes_grey_uint8_images_labels_and_classes(tmp_path):
    write_idx_pair(tmp_path, "train", IMAGES, LABELS, gz=True)
    data = load_split("idx", str(tmp_path), "train")
    assert len(data) == 6
    assert data.num_classes == 3  # no ClassLabel in IDX: max label 2, + 1
    assert data.channels == 1 and data.class_names is None
    assert [data.label(i) for i in range(6)] == [2, 0, 1, 2, 1, 0]
    image = data.image(3)
    assert image.shape == (1, 4, 4) and image.dtype == torch.uint8
    assert image[0, 3, 0] == 255 and image[0, 0, 0] == 30  # image 3: fill 30, bright pixel at row 3
    image.zero_()  # a copy: editing it must not change the dataset
    assert data.image(3)[0, 0, 0] == 30


def test_max_samples_keeps_the_first_samples(tmp_path):
    write_idx_pair(tmp_path, "train", IMAGES, LABELS, gz=False)
    data = load_split("idx", str(tmp_path), "train", max_samples=4)
    assert len(data) == 4 and [data.label(i) for i in range(4)] == [2, 0, 1, 2]


def test_loaded_data_survives_pickling_for_dataloader_workers(tmp_path):
    write_idx_pair(tmp_path, "train", IMAGES, LABELS, gz=False)
    tiny_dataset().save_to_disk(str(tmp_path / "disk"))
    for data in (load_split("idx", str(tmp_path), "train"), load_split("local", str(tmp_path / "disk"), "train")):
        copy = pickle.loads(pickle.dumps(data))
        assert torch.equal(copy.image(5), data.image(5)) and copy.label(5) == data.label(5)


# Local folders ----------------------------------------------------------------------------------------


def test_save_to_disk_dataset_dict_round_trips_and_picks_the_split(tmp_path):
    datasets.DatasetDict(train=tiny_dataset(), test=tiny_dataset().select(range(2))).save_to_disk(str(tmp_path))
    data = load_split("local", str(tmp_path), "test")
    assert len(data) == 2 and data.class_names == NAMES and data.num_classes == 3 and data.channels == 1
    assert torch.equal(data.image(1), torch.from_numpy(IMAGES[1])[None])
    assert data.label(0) == 2
    with pytest.raises(UserError, match=r"data.split: unknown split 'validation' in .*; available: test, train$"):
        load_split("local", str(tmp_path), "validation")


def test_single_saved_dataset_serves_only_the_split_it_was_saved_as(tmp_path):
    dataset = datasets.load_dataset(
        "parquet", data_files={"train": str(_parquet_file(tmp_path / "src"))}, split="train"
    )
    dataset.save_to_disk(str(tmp_path / "disk"))
    assert len(load_split("local", str(tmp_path / "disk"), "train")) == 6
    with pytest.raises(UserError, match=r"unknown split 'test' in .*; available: train"):
        load_split("local", str(tmp_path / "disk"), "test")


def _parquet_file(folder: Path, name: str = "train-00000-of-00001.parquet") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tiny_dataset().to_parquet(str(folder / name))
    return folder / name


@pytest.mark.parametrize(
    "layout", ["train-00000-of-00001.parquet", "data/train-00000-of-00001.parquet", "train/0.parquet"]
)
def test_parquet_files_are_found_by_split_prefix_or_split_folder(tmp_path, layout):
    file = tmp_path / layout
    _parquet_file(file.parent, file.name)
    _parquet_file(tmp_path / "test")  # a second split, in a split folder
    data = load_split("local", str(tmp_path), "train")
    assert len(data) == 6 and data.class_names == NAMES  # ClassLabel survives the parquet metadata
    assert torch.equal(data.image(4), torch.from_numpy(IMAGES[4])[None])
    with pytest.raises(UserError, match=r"unknown split 'valid' in .*; available: test, train$"):
        load_split("local", str(tmp_path), "valid")


def test_image_folder_with_split_folders_gives_rgb_images_and_class_names_from_folders(tmp_path):
    colours = {"cat": (200, 10, 10), "dog": (10, 10, 200)}
    for split, count in (("train", 3), ("test", 1)):
        for name, colour in colours.items():
            (tmp_path / split / name).mkdir(parents=True)
            for k in range(count):
                Image.new("RGB", (5, 3), colour).save(tmp_path / split / name / f"{k}.png")
    data = load_split("local", str(tmp_path), "train")
    assert len(data) == 6 and data.class_names == ["cat", "dog"] and data.channels == 3
    first = data.image(0)
    assert first.shape == (3, 3, 5)  # [C, H, W] of a 5 wide, 3 high picture
    expected = colours[data.class_names[data.label(0)]]
    assert first[:, 1, 2].tolist() == list(expected)
    assert len(load_split("local", str(tmp_path), "test")) == 2


def test_missing_or_empty_folder_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match=f"^data.path: folder not found: {tmp_path / 'nope'}$"):
        load_split("local", str(tmp_path / "nope"), "train")
    with pytest.raises(UserError, match=f"^data.path: folder not found: {tmp_path / 'nope'}$"):
        load_split("idx", str(tmp_path / "nope"), "train")
    with pytest.raises(UserError, match="no dataset found"):
        load_split("local", str(tmp_path), "train")


def test_wrong_column_names_list_the_columns_there_are(tmp_path):
    tiny_dataset().save_to_disk(str(tmp_path))
    message = (
        f"data.image_column: column 'img' not found in local dataset '{tmp_path}' split 'train'; columns: image, label"
    )
    with pytest.raises(UserError) as caught:
        load_split("local", str(tmp_path), "train", image_column="img")
    assert str(caught.value) == message
    with pytest.raises(UserError, match=r"^data.label_column: column 'target' not found .*; columns: image, label$"):
        load_split("local", str(tmp_path), "train", label_column="target")


def test_images_are_converted_to_the_channel_count_of_the_first_image(tmp_path):
    # First image RGB, second grey (128): the second comes back as 3 equal channels.
    pictures = [Image.new("RGB", (2, 2), (255, 0, 0)), Image.new("L", (2, 2), 128)]
    datasets.Dataset.from_dict({"image": pictures, "label": [0, 1]}, features=_plain_features()).save_to_disk(
        str(tmp_path)
    )
    data = load_split("local", str(tmp_path), "train")
    assert data.channels == 3 and data.num_classes == 2  # int labels: max 1, + 1
    assert data.image(1).shape == (3, 2, 2) and data.image(1)[:, 0, 0].tolist() == [128, 128, 128]


def _plain_features() -> datasets.Features:
    return datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})


def test_string_labels_become_sorted_class_names(tmp_path):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    rows = {"image": list(IMAGES[:3]), "label": ["shirt", "bag", "shirt"]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(tmp_path))
    data = load_split("local", str(tmp_path), "train")
    assert data.class_names == ["bag", "shirt"] and [data.label(i) for i in range(3)] == [1, 0, 1]


def test_uint8_array_images_are_read_like_pictures(tmp_path):
    features = datasets.Features({"image": datasets.Array2D((4, 4), "uint8"), "label": datasets.Value("int64")})
    datasets.Dataset.from_dict({"image": list(IMAGES), "label": LABELS.tolist()}, features=features).save_to_disk(
        str(tmp_path)
    )
    data = load_split("local", str(tmp_path), "train")
    assert data.channels == 1 and torch.equal(data.image(2), torch.from_numpy(IMAGES[2])[None])


def test_negative_labels_are_a_user_error(tmp_path):
    datasets.Dataset.from_dict({"image": list(IMAGES[:2]), "label": [0, -1]}, features=_plain_features()).save_to_disk(
        str(tmp_path)
    )
    with pytest.raises(UserError, match=r"holds label -1 \(unlabelled samples\?\)"):
        load_split("local", str(tmp_path), "train")


def test_hub_only_options_and_unknown_sources_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="^data.config: only applies to data.source 'hub', not 'local'$"):
        load_split("local", str(tmp_path), "train", config="plain")
    with pytest.raises(UserError, match="^data.source: unknown source 'web'; choose one of: hub, local, idx$"):
        load_split("web", str(tmp_path), "train")


# Hub --------------------------------------------------------------------------------------------------


def test_hub_source_passes_id_config_split_revision_and_checks_columns(tmp_path, monkeypatch):
    """The Hub path without a network: load_dataset is replaced by a local parquet copy of the same columns."""
    local = datasets.load_dataset("parquet", data_files={"train": str(_parquet_file(tmp_path))}, split="train")
    calls = []

    def fake_load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split, revision))
        return local

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_split("hub", "zalando-datasets/fashion_mnist", "train", revision="abc123", max_samples=5)
    assert calls == [("zalando-datasets/fashion_mnist", None, "train", "abc123")]
    assert len(data) == 5 and data.class_names == NAMES and data.channels == 1
    assert torch.equal(data.image(0), torch.from_numpy(IMAGES[0])[None])
    with pytest.raises(UserError) as caught:
        load_split("hub", "zalando-datasets/fashion_mnist", "train", image_column="img")
    expected = (
        "data.image_column: column 'img' not found in hub dataset 'zalando-datasets/fashion_mnist' split 'train'; "
        "columns: image, label"
    )
    assert str(caught.value) == expected


def test_uncached_hub_id_offline_is_one_line_user_error_quickly(tmp_path):
    # A fresh process: huggingface_hub and datasets read the offline switches when imported.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    script = (
        "from curricurun.data.sources import load_split\n"
        "from curricurun.errors import UserError\n"
        "try:\n"
        "    load_split('hub', 'curricurun-tests/no-such-dataset', 'train')\n"
        "except UserError as error:\n"
        "    print(error)\n"
    )
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=REPO_ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    assert lines[0].startswith(
        "data.path: could not load hub dataset 'curricurun-tests/no-such-dataset' (split 'train'): "
    )
    assert lines[0].endswith("; check the id, or your network (HF_HUB_OFFLINE and HF_DATASETS_OFFLINE are set)")
    assert elapsed < 20  # no network waits: interpreter start + imports only


# Real data --------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not (FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
    reason="Fashion-MNIST not installed: apt-get install dataset-fashion-mnist (or make data)",
)
def test_fashion_mnist_idx_files_load_with_their_published_sizes_quickly():
    train = load_split("idx", str(FASHION_MNIST), "train")
    test = load_split("idx", str(FASHION_MNIST), "test")
    assert (len(train), len(test)) == (60_000, 10_000)  # Debian dataset-fashion-mnist
    assert train.num_classes == test.num_classes == 10 and train.channels == 1
    assert train.image(0).shape == (1, 28, 28)
    assert [train.label(i) for i in range(4)] == [9, 0, 0, 3]  # first labels of the upstream train file
    counts = np.bincount([train.label(i) for i in range(len(train))])
    assert counts.tolist() == [6000] * 10  # 6,000 train images per class
    started = time.perf_counter()
    for index in range(10_000):
        train.image(index)
    per_image = (time.perf_counter() - started) / 10_000
    assert per_image < 50e-6  # measured 2 µs; a decoding path (PNG, Arrow rows) would take 100s of µs
