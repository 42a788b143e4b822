"""FID and IS from torch-fidelity's maths equal a re-derivation with scipy.linalg.sqrtm / plain numpy."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from curricurun.metrics.scores import feature_statistics, frechet_distance, inception_score


def _fixed_features(seed: int, n: int = 400, d: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(d, d))
    return rng.normal(size=(n, d)) @ mixing + rng.normal(size=d)


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    """Heusel et al. 2017 eq. 6 with the matrix square root from sqrtm (pytorch-fid's derivation)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(sigma_a @ sigma_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))


def test_frechet_distance_equals_sqrtm_derivation():
    a, b = _fixed_features(0), _fixed_features(1)
    ours = frechet_distance(feature_statistics(a), feature_statistics(b))
    assert ours > 1.0
    assert abs(ours - _scipy_fid(a, b)) < 1e-6 * max(1.0, abs(ours))


def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    a = _fixed_features(2)
    assert abs(frechet_distance(feature_statistics(a), feature_statistics(a))) < 1e-6
    shifted = frechet_distance(feature_statistics(a), feature_statistics(a + 3.0))
    assert abs(shifted - 9.0 * a.shape[1]) < 1e-6


def _numpy_inception_score(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """Salimans et al. 2016: exp(mean KL(p(y|x) || p(y))) per split, after torch-fidelity's seeded shuffle."""
    logits = logits[np.random.RandomState(2020).permutation(len(logits))]
    shifted = logits - logits.max(1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
    p = np.exp(log_p)
    scores = []
    for i in range(splits):
        chunk = slice(i * len(p) // splits, (i + 1) * len(p) // splits)
        part, log_part = p[chunk], log_p[chunk]
        marginal = part.mean(0, keepdims=True)
        scores.append(np.exp((part * (log_part - np.log(marginal))).sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_equals_numpy_derivation():
    logits = _fixed_features(3, n=500, d=10) * 0.7
    mean, std = inception_score(logits, splits=10)
    expected_mean, expected_std = _numpy_inception_score(logits, 10)
    assert 1.0 < mean < 10.0
    assert abs(mean - expected_mean) < 1e-6 and abs(std - expected_std) < 1e-6
