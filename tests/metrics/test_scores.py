"""FID, IS and precision/recall from torch-fidelity's maths equal a re-derivation (scipy.linalg.sqrtm, plain numpy)."""

from __future__ import annotations

import numpy as np
import scipy.linalg

from curricurun.metrics.scores import feature_statistics, frechet_distance, inception_score, precision_recall


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


def _numpy_precision_recall(generated: np.ndarray, real: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Kynkäänniemi et al. 2019 written out: radius = k-th smallest distance within the set, self excluded."""

    def radii(points):
        distances = np.linalg.norm(points[:, None] - points[None], axis=-1)
        return np.sort(distances, axis=1)[:, k]  # column 0 is the point itself

    cross = np.linalg.norm(generated[:, None] - real[None], axis=-1)  # [generated, real]
    precision = (cross <= radii(real)[None]).any(axis=1).mean()
    recall = (cross <= radii(generated)[:, None]).any(axis=0).mean()
    return float(precision), float(recall)


def test_precision_recall_of_points_on_a_line_by_hand():
    """Real 0..4: radii 3,2,2,2,3, manifold [-3, 7]; generated 6, 10, 10.5, 11, 11.5: radii 5, 1.5, 1, 1.5, 1.5,
    manifold [1, 13]. Only 6 lies in the real manifold (precision 1/5); real 1..4 lie in the generated one
    (recall 4/5; 1 sits exactly on the ball of 6, and the balls are closed as in the evaluator)."""
    real = np.array([[0.0, 0.0], [1, 0], [2, 0], [3, 0], [4, 0]])
    generated = np.array([[6.0, 0.0], [10, 0], [10.5, 0], [11, 0], [11.5, 0]])
    result = precision_recall(generated, real)
    assert abs(result["precision"] - 0.2) < 1e-6 and abs(result["recall"] - 0.8) < 1e-6
    swapped = precision_recall(real, generated)
    assert abs(swapped["precision"] - 0.8) < 1e-6 and abs(swapped["recall"] - 0.2) < 1e-6


def test_precision_recall_equals_numpy_derivation_on_fixed_features():
    real = _fixed_features(3, n=120, d=8)
    generated = _fixed_features(4, n=90, d=8) * 1.3 + 0.5
    expected = _numpy_precision_recall(generated, real)
    result = precision_recall(generated, real)
    assert 0.0 < expected[0] < 1.0 and 0.0 < expected[1] < 1.0  # neither saturated: the comparison can fail
    assert abs(result["precision"] - expected[0]) < 1e-6 and abs(result["recall"] - expected[1]) < 1e-6
    same = precision_recall(real, real)
    assert same == {"precision": 1.0, "recall": 1.0}
