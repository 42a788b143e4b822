"""The samples file has the layout OpenAI's evaluator reads: np.load(path)["arr_0"], uint8 NHWC."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from curricurun.errors import UserError
from curricurun.metrics.npz import read_npz, to_uint8_nhwc, write_npz


def test_written_file_opens_with_numpy_in_the_evaluator_layout(tmp_path):
    images = torch.rand(5, 3, 8, 6, generator=torch.Generator().manual_seed(0))
    path = write_npz(tmp_path / "samples.npz", to_uint8_nhwc(images))
    with np.load(path) as archive:
        assert archive.files == ["arr_0"]
        array = archive["arr_0"]
    assert array.dtype == np.uint8 and array.shape == (5, 8, 6, 3)
    assert np.array_equal(array, (images * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy())
    assert np.array_equal(read_npz(path), array)


def test_equal_images_give_an_equal_file(tmp_path):
    images = np.arange(2 * 4 * 4 * 1, dtype=np.uint8).reshape(2, 4, 4, 1)
    first = hashlib.sha256(write_npz(tmp_path / "a.npz", images).read_bytes()).hexdigest()
    second = hashlib.sha256(write_npz(tmp_path / "b.npz", images).read_bytes()).hexdigest()
    assert first == second


@pytest.mark.parametrize(
    "content, expected",
    [(None, "file not found"), (b"<html>", "not a readable .npz"), ("float", "expected arr_0 uint8")],
)
def test_bad_samples_files_are_one_line_errors(tmp_path, content, expected):
    path = tmp_path / "bad.npz"
    if content == "float":
        np.savez(path, arr_0=np.zeros((2, 4, 4, 3), dtype=np.float32))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=expected) as raised:
        read_npz(path)
    assert "\n" not in str(raised.value)
