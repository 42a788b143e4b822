"""The exported tokenizer: exact round trip, VAR's teacher-forcing and sampling inputs, clear load errors."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import torch.nn.functional as F
from setup_helpers import small_vqvae_config

from curricurun.errors import UserError
from curricurun.setups.vqvae.codebook import CodebookOptions
from curricurun.setups.vqvae.tokenizer import MultiScaleTokenizer, load_tokenizer, save_tokenizer
from curricurun.setups.vqvae.vqvae import VQVAE

TINY = small_vqvae_config()


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A model after a few optimizer steps with every codebook option on, and its saved tokenizer directory."""
    torch.manual_seed(0)
    model = VQVAE(TINY, CodebookOptions(update="ema", init="kmeans", dead_code_restart=True))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    for _ in range(3):
        images = torch.rand(8, 1, 16, 16) * 2 - 1
        output = model(images)
        ((output.reconstruction - images).square().mean() + output.vq_loss).backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    return model, save_tokenizer(model, tmp_path_factory.mktemp("export") / "tokenizer")


@pytest.fixture
def trained(saved):
    model, directory = saved
    return model, load_tokenizer(directory)


def test_decode_of_encode_is_bit_for_bit_the_reconstruction_the_model_evaluates(trained):
    model, tokenizer = trained
    images = torch.rand(5, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        expected = model(images).reconstruction.clamp(-1, 1)
    indices = tokenizer.encode(images)
    assert [tuple(index.shape) for index in indices] == [(5, 1, 1), (5, 2, 2), (5, 4, 4), (5, 8, 8)]
    assert all(index.dtype == torch.long for index in indices)
    assert torch.equal(tokenizer.decode(indices), expected)


def test_the_tokenizer_reports_its_shape_and_is_frozen(trained):
    _, tokenizer = trained
    assert (tokenizer.patch_nums, tokenizer.vocab_size, tokenizer.embed_dim) == ((1, 2, 4, 8), 32, 4)
    assert (tokenizer.in_channels, tokenizer.image_size) == (1, 16)
    assert not any(p.requires_grad for p in tokenizer.parameters())
    assert not tokenizer.train().training
    assert not any(key.startswith("codebook_upkeep") for key in tokenizer.vqvae.state_dict())


def test_teacher_forcing_input_is_the_running_f_hat_down_sampled_to_each_next_scale(trained):
    _, tokenizer = trained
    indices = tokenizer.encode(torch.rand(3, 1, 16, 16) * 2 - 1)
    inputs = tokenizer.teacher_forcing_input(indices)
    # L = 1 + 4 + 16 + 64 = 85 tokens; the first scale has no input: 85 − 1 = 84 rows of Cvae = 4.
    assert inputs.shape == (3, 84, 4) and inputs.dtype == torch.float32
    # Sampling's step function rebuilds the same rows scale by scale and ends at the full f̂.
    f_hat, rows = torch.zeros(3, 4, 8, 8), []
    for scale, index in enumerate(indices):
        f_hat, following = tokenizer.next_autoregressive_input(scale, f_hat, tokenizer.embed(index))
        if scale < 3:
            rows.append(following.flatten(2).transpose(1, 2))
    assert torch.equal(torch.cat(rows, 1), inputs)
    assert torch.equal(f_hat, tokenizer.f_hat(indices))
    assert torch.equal(tokenizer.decode_latent(f_hat), tokenizer.decode(indices))
    # Scale 1's input is f̂ after scale 0, area-down-sampled to 2×2: here worked out directly.
    first = tokenizer.vqvae.quantize.scale_contribution(0, tokenizer.embed(indices[0]))
    expected = F.interpolate(first, size=(2, 2), mode="area").flatten(2).transpose(1, 2)
    assert torch.equal(inputs[:, :4], expected)


def test_a_truncated_pyramid_gives_the_prefix_of_the_teacher_forcing_input(trained):
    _, tokenizer = trained
    indices = tokenizer.encode(torch.rand(2, 1, 16, 16) * 2 - 1)
    # VAR's stage 2 keeps maps 0..2 (e_2 = 1 + 4 + 16 = 21 tokens): inputs of scales 1 and 2, 21 − 1 = 20 rows.
    assert torch.equal(tokenizer.teacher_forcing_input(indices[:3]), tokenizer.teacher_forcing_input(indices)[:, :20])
    assert tokenizer.teacher_forcing_input(indices[:1]).shape == (2, 0, 4)


def test_flattened_token_maps_are_accepted(trained):
    _, tokenizer = trained
    indices = tokenizer.encode(torch.rand(2, 1, 16, 16) * 2 - 1)
    flat = [index.flatten(1) for index in indices]
    assert torch.equal(tokenizer.decode(flat), tokenizer.decode(indices))


def test_from_vqvae_copies_the_weights_without_a_file(trained):
    model, tokenizer = trained
    copy = MultiScaleTokenizer.from_vqvae(model)
    images = torch.rand(2, 1, 16, 16) * 2 - 1
    assert torch.equal(copy.decode(copy.encode(images)), tokenizer.decode(tokenizer.encode(images)))


def test_the_json_holds_the_configuration_and_a_file_path_inside_the_directory_loads_too(saved):
    _, directory = saved
    document = json.loads((directory / "tokenizer.json").read_text())
    assert document["format"] == "curricurun-vqvae-tokenizer"
    assert document["config"]["patch_nums"] == [1, 2, 4, 8]
    assert load_tokenizer(directory / "tokenizer.safetensors").vocab_size == 32


def test_missing_or_broken_files_are_user_errors_naming_the_file(saved, tmp_path):
    directory = shutil.copytree(saved[1], tmp_path / "tokenizer")
    with pytest.raises(UserError, match="file not found: .*nowhere/tokenizer.json"):
        load_tokenizer(tmp_path / "nowhere")
    config = directory / "tokenizer.json"
    document = json.loads(config.read_text())
    document["config"]["vocab_size"] = 64
    config.write_text(json.dumps(document))
    with pytest.raises(UserError, match="tokenizer.safetensors does not match .*tokenizer.json"):
        load_tokenizer(directory)
    config.write_text("{not json")
    with pytest.raises(UserError, match="tokenizer.json is not a tokenizer configuration"):
        load_tokenizer(directory)
    (directory / "tokenizer.safetensors").write_bytes(b"garbage")
    config.write_text(json.dumps({**document, "config": {**document["config"], "vocab_size": 32}}))
    with pytest.raises(UserError, match="tokenizer.safetensors is not a readable safetensors file"):
        load_tokenizer(directory)
