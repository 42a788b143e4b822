"""The ``pyramid_flow`` setup: stage columns from the stage_mixture state, the loss, evaluation sums and sampling."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import save_file

from curricurun import cli
from curricurun.curriculum.base import StageState
from curricurun.errors import UserError
from curricurun.setups import get as get_setup
from curricurun.setups.base import DataShape, SampleOptions
from curricurun.setups.pyramid_flow.latents import AutoencoderLatents, LatentCache
from curricurun.setups.pyramid_flow.pyramid import upsample_nearest
from curricurun.setups.pyramid_flow.setup import PyramidFlowParams, PyramidFlowSetup

REPO = Path(__file__).resolve().parents[2]
SHAPE = DataShape(channels=1, num_classes=10, image_size=32)
MIX_121 = StageState(stage_ratios=(1, 2, 1))


def _setup(**params) -> PyramidFlowSetup:
    defaults = {"hidden_size": 32, "depth": 1, "num_heads": 2, "patch_size": 2, "class_dropout": 0.0}
    return PyramidFlowSetup(PyramidFlowParams(**{**defaults, **params}), SHAPE)


def _batch(count: int, image: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    images = image if image is not None else torch.rand(count, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    return {"image": images * 2 - 1, "label": torch.arange(count) % 10, "index": torch.arange(count) + 100}


class Spy(torch.nn.Module):
    """Records what the setup feeds the model and predicts zero velocity."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.calls = []

    def forward(self, *latents, timesteps, conditions):
        self.calls.append(([x.clone() for x in latents], timesteps.clone(), conditions.clone()))
        return tuple(torch.zeros_like(x) + self.anchor for x in latents)


def test_the_setup_is_registered_under_its_recipe_name():
    assert get_setup("pyramid_flow") is PyramidFlowSetup


def test_a_1_2_1_batch_is_split_by_position_into_stage_groups_with_in_band_timesteps():
    # stage_columns([1, 2, 1], 8) = [0, 1, 1, 2, 0, 1, 1, 2]: stage 0 gets samples 0, 4 (8 px), stage 1 gets
    # 1, 2, 5, 6 (16 px), stage 2 gets 3, 7 (32 px); labels = sample index, so the conditions show the order.
    setup, spy = _setup(), Spy()
    setup.training_loss(spy, _batch(8), MIX_121)
    (latents, timesteps, conditions) = spy.calls[0]
    assert [tuple(x.shape) for x in latents] == [(2, 1, 8, 8), (4, 1, 16, 16), (2, 1, 32, 32)]
    assert conditions.tolist() == [0, 4, 1, 2, 5, 6, 3, 7]
    bands = [(744, 1000), (386, 744), (1, 386)]
    stage_of = [0, 0, 1, 1, 1, 1, 2, 2]
    for t, k in zip(timesteps.tolist(), stage_of, strict=True):
        assert bands[k][0] <= t <= bands[k][1]


def test_the_uniform_mix_and_the_missing_curriculum_both_cycle_through_the_stages():
    setup, spy = _setup(), Spy()
    setup.training_loss(spy, _batch(6), StageState(stage_ratios=(1, 1, 1)))
    setup.training_loss(spy, _batch(6), StageState())  # no stage_mixture: the reference's default [1, 1, 1]
    for latents, _, conditions in spy.calls:
        assert [x.shape[0] for x in latents] == [2, 2, 2]
        assert conditions.tolist() == [0, 3, 1, 4, 2, 5]


def test_the_token_balanced_extension_mix_is_taken_as_given():
    # OUR EXTENSION [16, 8, 1] (stage_mixture.extension_token_balanced): a batch of 25 is 16 + 8 + 1 samples.
    setup, spy = _setup(), Spy()
    setup.training_loss(spy, _batch(25), StageState(stage_ratios=(16, 8, 1)))
    assert [x.shape[0] for x in spy.calls[0][0]] == [16, 8, 1]


def test_a_batch_that_is_not_a_multiple_of_the_ratio_sum_or_a_mix_of_another_depth_is_a_user_error():
    setup = _setup()
    with pytest.raises(UserError, match="batch size 6 is not a multiple"):
        setup.training_loss(Spy(), _batch(6), MIX_121)
    with pytest.raises(UserError, match="2 ratios .* for setup.stages 3"):
        setup.training_loss(Spy(), _batch(6), StageState(stage_ratios=(1, 2)))


def test_the_loss_is_the_mean_of_per_sample_velocity_mses():
    # With a black image (x = 0) every stage's pair is pure noise: start = S_k n, end = E_k n, so the target is
    # v = (S_k − E_k)/(r S_k + (1 − r) E_k) · x_r, with r recovered from τ on the stage's band. A zero prediction
    # then scores mean_i mean(v_i²), computed here from what the model received.
    setup, spy = _setup(), Spy()
    torch.manual_seed(3)
    loss = setup.training_loss(spy, _batch(8, torch.full((8, 1, 32, 32), 0.5)), MIX_121)
    latents, timesteps, _ = spy.calls[0]
    per_sample, offset = [], 0
    for k, group in enumerate(latents):
        window = setup.windows[k]
        for x_r, t in zip(group, timesteps[offset : offset + group.shape[0]], strict=True):
            r = 1 - (window.timestep_max - float(t)) / (window.timestep_max - window.timestep_min)
            level = r * window.start + (1 - r) * window.end
            per_sample.append(((window.start - window.end) / level * x_r).pow(2).mean())
        offset += group.shape[0]
    assert float(loss.detach()) == pytest.approx(float(torch.stack(per_sample).mean()), rel=1e-4)


def test_condition_dropout_replaces_labels_with_the_null_class():
    setup, spy = _setup(class_dropout=0.999999), Spy()
    setup.training_loss(spy, _batch(8), MIX_121)
    assert spy.calls[0][2].tolist() == [10] * 8


def test_evaluation_noise_belongs_to_each_sample_so_sums_add_up_across_batches():
    setup = _setup()
    model = setup.build_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.05)
    batch = _batch(6)
    whole = setup.evaluation_sums(model, batch)
    first = setup.evaluation_sums(model, {k: v[:2] for k, v in batch.items()})
    rest = setup.evaluation_sums(model, {k: v[2:] for k, v in batch.items()})
    assert whole["loss_sum"].shape == (3,) and float(whole["count"]) == 6
    assert torch.allclose(whole["loss_sum"], first["loss_sum"] + rest["loss_sum"], rtol=1e-5)
    assert torch.equal(whole["loss_sum"], setup.evaluation_sums(model, batch)["loss_sum"])


def test_metrics_are_the_per_stage_losses_and_their_mean():
    # sums [3, 6, 9] over 3 samples → 1, 2, 3 per stage, mean 2.
    metrics = PyramidFlowSetup.metrics_from_sums({"loss_sum": torch.tensor([3.0, 6.0, 9.0]), "count": 3.0})
    assert metrics == {"loss": 2.0, "loss_stage0": 1.0, "loss_stage1": 2.0, "loss_stage2": 3.0}


class Oracle(torch.nn.Module):
    """The exact velocity when the data is one image ``target``: v = start − end, with the noise solved from x_r."""

    def __init__(self, setup: PyramidFlowSetup, target: torch.Tensor):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.setup, self.pyramid = setup, []
        level = target
        for _ in range(len(setup.windows)):
            self.pyramid.insert(0, level)
            level = torch.nn.functional.interpolate(level, scale_factor=0.5, mode="bilinear")

    def forward(self, x, timesteps, conditions):
        k = [p.shape[-1] for p in self.pyramid].index(x.shape[-1])
        window = self.setup.windows[k]
        r = 1 - (window.timestep_max - timesteps[0]) / (window.timestep_max - window.timestep_min)
        previous = upsample_nearest(self.pyramid[k - 1]) if k else torch.zeros_like(x)
        end_signal = 0.0 if k == len(self.pyramid) - 1 else window.end
        start_clean = (1 - window.start) * previous
        end_clean = (1 - end_signal) * self.pyramid[k]
        noise = (x - r * start_clean - (1 - r) * end_clean) / (r * window.start + (1 - r) * end_signal)
        return ((window.start - end_signal) * noise + start_clean - end_clean,)


def test_stage_wise_sampling_with_the_exact_velocity_lands_on_the_data():
    # Straight paths are integrated exactly by Euler steps, and the renoised jump α·U(x) + β·n_blk is again a
    # start point S_k·ñ + (1 − S_k)·U(x⁽ᵏ⁻¹⁾) (α·d = 1 − S_k), so any seed must end on the one training image.
    setup = _setup()
    target = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(5)) * 2 - 1
    for seed in (0, 1):
        images = setup.sample(Oracle(setup, target), [2], seed, SampleOptions(cfg=1.0, steps=4))
        assert torch.allclose(images, (target + 1) / 2, atol=1e-4)


def test_sampling_returns_unit_range_images_class_by_class_and_repeats_with_a_seed():
    setup = _setup(sample_steps=2)
    model = setup.build_model()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(std=0.05)
    images = setup.sample(model, [1, 7], 0, SampleOptions(cfg=1.5, per_class=3))
    assert images.shape == (6, 1, 32, 32) and 0 <= images.min() and images.max() <= 1
    assert torch.equal(images, setup.sample(model, [1, 7], 0, SampleOptions(cfg=1.5, per_class=3)))
    assert not torch.equal(images, setup.sample(model, [1, 7], 1, SampleOptions(cfg=1.5, per_class=3)))
    with pytest.raises(UserError, match="--classes: expected class indices below 10, got 12"):
        setup.sample(model, [12], 0, SampleOptions())


def test_after_evaluation_writes_a_sample_grid(tmp_path):
    setup = _setup(sample_steps=1, preview_classes=3)
    setup.after_evaluation(setup.build_model(), _batch(2), 40, tmp_path)
    assert (tmp_path / "samples" / "step-00000040.png").is_file()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"latents": "vae"}, "needs 'vae'"),
        ({"latent_cache": "/tmp/x"}, "'latent_cache' needs latents: vae"),
        ({"conditioning": "text"}, "'text_embeddings' is needed"),
        ({"packing": "unpacked", "packed_attention": "flex"}, "applies to packing: packed"),
        ({"gamma": 0.5}, "less than or equal to 0.333"),
        ({"eval_ratios": [0.0]}, "eval_ratios"),
        ({"patch": 2}, "Extra inputs are not permitted"),
    ],
)
def test_inconsistent_parameters_are_rejected_at_validation(params, message):
    with pytest.raises(ValidationError, match=message):
        PyramidFlowParams(**params)


def test_an_image_size_that_does_not_tile_into_three_stages_of_patches_is_a_user_error():
    with pytest.raises(UserError, match="setup.image_size: expected a multiple of 8 .* got 28"):
        PyramidFlowSetup(PyramidFlowParams(patch_size=2), DataShape(1, 10, 28))


def test_the_shipped_recipes_validate_offline_without_diffusers(capsys):
    recipes = sorted(str(p) for p in (REPO / "recipes").glob("pyramid_flow_*.yaml"))
    assert len(recipes) == 3
    assert cli.run(["validate", *recipes]) == 0
    assert capsys.readouterr().out.count(": ok") == 3


def test_the_vae_source_asks_for_diffusers_when_it_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", None)  # import diffusers → ImportError
    space = AutoencoderLatents("stabilityai/stable-diffusion-3-medium-diffusers", 16, 8, "vae")
    with pytest.raises(UserError, match="pip install diffusers"):
        space.encode(torch.zeros(1, 3, 16, 16))


class FakeVae(torch.nn.Module):
    """Stands in for diffusers' AutoencoderKL: 'encodes' by 8× average pooling into 16 channels."""

    config = types.SimpleNamespace(latent_channels=16, shift_factor=0.0609, scaling_factor=1.5305)
    loaded: list = []

    @classmethod
    def from_pretrained(cls, hub_id, subfolder=None, revision=None, torch_dtype=None):
        cls.loaded.append((hub_id, subfolder, torch_dtype))
        return cls()

    def encode(self, images):
        pooled = torch.nn.functional.avg_pool2d(images, 8).repeat(1, 6, 1, 1)[:, :16]
        return types.SimpleNamespace(latent_dist=types.SimpleNamespace(sample=lambda: pooled))

    def decode(self, latents):
        return types.SimpleNamespace(sample=torch.nn.functional.interpolate(latents[:, :3], scale_factor=8))


def test_the_vae_source_loads_lazily_by_hub_id_and_normalises_with_the_vae_config(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", types.SimpleNamespace(AutoencoderKL=FakeVae))
    FakeVae.loaded.clear()
    space = AutoencoderLatents("stabilityai/stable-diffusion-3-medium-diffusers", 16, 8, "vae", dtype="float32")
    assert FakeVae.loaded == []  # nothing loaded before first use
    raw = space.encode(torch.full((2, 1, 16, 16), 0.5))  # grey → 3 channels
    assert FakeVae.loaded == [("stabilityai/stable-diffusion-3-medium-diffusers", "vae", torch.float32)]
    assert raw.shape == (2, 16, 2, 2)
    # SD3 VAE config: (z − 0.0609)·1.5305 = (0.5 − 0.0609)·1.5305 = 0.67204
    assert space.normalise(raw).flatten()[0].item() == pytest.approx(0.67204, abs=1e-5)
    assert space.decode(space.normalise(raw)).shape == (2, 3, 16, 16)


def test_a_vae_with_another_channel_count_than_the_recipe_states_is_a_user_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "diffusers", types.SimpleNamespace(AutoencoderKL=FakeVae))
    space = AutoencoderLatents("some/vae", 4, 8)
    with pytest.raises(UserError, match="setup.latent_channels: expected 16"):
        space.encode(torch.zeros(1, 3, 16, 16))


def test_the_latent_cache_encodes_each_sample_once_and_rejects_another_vaes_files(tmp_path):
    calls = []

    def encoder(images):
        calls.append(images.shape[0])
        return images[:, :, ::8, ::8] * 3

    cache = LatentCache(tmp_path, {"vae": "a", "image_size": "16"})
    images = torch.rand(3, 1, 16, 16)
    first = cache.encode("train", torch.tensor([5, 6, 7]), images, encoder)
    again = cache.encode("train", torch.tensor([7, 5, 6]), images[[2, 0, 1]], encoder)
    mixed = cache.encode("train", torch.tensor([8, 6]), torch.rand(2, 1, 16, 16), encoder)
    assert calls == [3, 1]  # only sample 8 was new the third time
    assert torch.equal(again, first[[2, 0, 1]]) and torch.equal(mixed[1], first[1])
    assert sorted(p.name for p in (tmp_path / "train").iterdir()) == [f"{i}.safetensors" for i in (5, 6, 7, 8)]
    with pytest.raises(UserError, match="was made with vae='a', this run needs 'b'"):
        LatentCache(tmp_path, {"vae": "b", "image_size": "16"}).encode("train", torch.tensor([5]), images[:1], encoder)


def test_per_class_text_embeddings_condition_the_model_and_drop_to_the_null_row(tmp_path):
    path = tmp_path / "text.safetensors"
    table = torch.arange(10.0)[:, None].repeat(1, 6)
    save_file({"embeddings": table, "null": torch.full((6,), -1.0)}, str(path))
    setup, spy = _setup(conditioning="text", text_embeddings=str(path)), Spy()
    assert setup.build_model().condition_embed.in_features == 6
    setup.training_loss(spy, _batch(4), MIX_121)
    assert spy.calls[0][2][:, 0].tolist() == [0.0, 1.0, 2.0, 3.0]
    dropped = _setup(conditioning="text", text_embeddings=str(path), class_dropout=0.999999)
    dropped.training_loss(spy, _batch(4), MIX_121)
    assert spy.calls[1][2].unique().tolist() == [-1.0]


def test_a_text_embedding_file_of_the_wrong_shape_is_a_user_error(tmp_path):
    path = tmp_path / "text.safetensors"
    save_file({"embeddings": torch.zeros(4, 6)}, str(path))
    with pytest.raises(UserError, match="per class needs 10 rows"):
        _setup(conditioning="text", text_embeddings=str(path))
