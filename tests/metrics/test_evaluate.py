"""``curricurun evaluate``: generation in index-seeded batches (same images on 1 and 2 processes, resumable to the
same sha256), scoring of existing samples, offline Inception refusal, domain FID floor < ceiling."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from engine_helpers import needs_fashion_mnist, run_cli

from curricurun import cli
from curricurun.commands.evaluate import EvaluateRequest, generation, run_evaluate
from curricurun.commands.evaluate.reference import split_images
from curricurun.errors import UserError
from curricurun.metrics.npz import write_npz
from curricurun.recipe import load_recipe
from curricurun.setups.base import SampleOptions

pytestmark = needs_fashion_mnist


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _request(run, classifier, npz, **changes) -> EvaluateRequest:
    fields = dict(checkpoint=run, num_samples=10, metrics=("fid",), npz=npz, feature_extractor=str(classifier),
                  batch_size=4, seed=3, options=SampleOptions(cfg=1.5, steps=2))  # fmt: skip
    return EvaluateRequest(**{**fields, **changes})


def test_a_killed_generation_resumes_to_the_same_file(tiny_flow_run, random_classifier_run, tmp_path, monkeypatch):
    recipe = load_recipe(tiny_flow_run / "recipe.resolved.yaml", [])
    whole = tmp_path / "whole" / "samples.npz"
    results = run_evaluate(recipe, _request(tiny_flow_run, random_classifier_run, whole), print)
    assert results["fid"] > 0 and json.loads(whole.with_name("samples.metrics.json").read_text())["images"] == 10
    with np.load(whole) as archive:
        assert archive["arr_0"].shape == (10, 32, 32, 1) and archive["arr_0"].dtype == np.uint8

    saved = generation.save_batch
    calls = []

    def killed_after_two(path, images):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(path)
        saved(path, images)

    resumed = tmp_path / "resumed" / "samples.npz"
    monkeypatch.setattr(generation, "save_batch", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        run_evaluate(recipe, _request(tiny_flow_run, random_classifier_run, resumed), print)
    assert not resumed.exists() and len(list(resumed.with_name("samples.batches").glob("batch-*.npy"))) == 2
    monkeypatch.setattr(generation, "save_batch", saved)
    run_evaluate(recipe, _request(tiny_flow_run, random_classifier_run, resumed), print)
    assert _sha(resumed) == _sha(whole)
    with pytest.raises(UserError, match=r"other settings \(seed\)"):
        run_evaluate(recipe, _request(tiny_flow_run, random_classifier_run, resumed, seed=4), print)
    other_seed = tmp_path / "seed4" / "samples.npz"
    run_evaluate(recipe, _request(tiny_flow_run, random_classifier_run, other_seed, seed=4), print)
    assert _sha(other_seed) != _sha(whole)


@pytest.mark.slow
def test_one_and_two_processes_write_the_same_samples(tiny_flow_run, random_classifier_run, tmp_path):
    recipe = tiny_flow_run / "recipe.resolved.yaml"
    outputs = {}
    for processes in (1, 2):
        npz = tmp_path / f"p{processes}" / "samples.npz"
        arguments = ["evaluate", str(recipe), "--checkpoint", str(tiny_flow_run), "--per-class", "1",
                     "--batch-size", "3", "--steps", "2", "--seed", "5", "--npz", str(npz),
                     "--feature-extractor", str(random_classifier_run)]  # fmt: skip
        result = run_cli(arguments, processes=processes)
        outputs[processes] = (_sha(npz), [line for line in result.stdout.splitlines() if line.startswith("fid ")])
    assert outputs[1] == outputs[2] and len(outputs[1][1]) == 1


def test_domain_fid_of_real_images_is_below_noise(random_classifier_run, tmp_path):
    recipe = load_recipe(random_classifier_run / "recipe.resolved.yaml", [])
    train = split_images(recipe, "train", 200)
    noise = np.random.default_rng(0).integers(0, 256, train.shape, dtype=np.uint8)
    scores = {}
    for name, images in (("train", train), ("noise", noise)):
        request = EvaluateRequest(samples=write_npz(tmp_path / f"{name}.npz", images), metrics=("fid", "is"),
                                  feature_extractor=str(random_classifier_run))  # fmt: skip
        scores[name] = run_evaluate(recipe, request, print)
    assert scores["train"]["fid"] < 0.5 * scores["noise"]["fid"], scores


def test_offline_inception_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    samples = write_npz(tmp_path / "s.npz", np.zeros((4, 8, 8, 3), dtype=np.uint8))

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr("torch.hub.download_url_to_file", offline)
    code = cli.run(["evaluate", "recipes/demo.yaml", "--samples", str(samples), "--metrics", "fid"])
    error = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in error
    assert "weights-inception-2015-12-05-6726825d.pth" in error
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in error


def test_bad_requests_are_user_errors(tiny_flow_run):
    recipe = load_recipe(tiny_flow_run / "recipe.resolved.yaml", [])
    with pytest.raises(UserError, match="--checkpoint DIR"):
        run_evaluate(recipe, EvaluateRequest(), print)
    assert cli.run(["evaluate", "recipes/demo.yaml", "--samples", "x.npz", "--metrics", "kid"]) == 2


def test_tokenizer_psnr_and_rfid_compare_reconstructions_with_the_split(tiny_tokenizer_run, random_classifier_run):
    recipe = load_recipe(tiny_tokenizer_run / "recipe.resolved.yaml", [])
    request = EvaluateRequest(checkpoint=tiny_tokenizer_run, metrics=("fid", "psnr"), batch_size=32,
                              feature_extractor=str(random_classifier_run))  # fmt: skip
    results = run_evaluate(recipe, request, print)
    with np.load(tiny_tokenizer_run / "evaluate" / "reconstructions.npz") as archive:
        reconstructions = archive["arr_0"].astype(np.float64)
    real = split_images(recipe).astype(np.float64)
    assert reconstructions.shape == real.shape == (64, 32, 32, 1)
    mse = ((real - reconstructions) ** 2).reshape(64, -1).mean(1)
    assert results["psnr"] == pytest.approx(np.mean(10 * np.log10(255.0**2 / mse)), abs=1e-9)
    assert results["rfid"] > 0
