"""FID and IS from feature arrays, computed by torch-fidelity's own functions.

torch-fidelity (``metric_fid.fid_features_to_statistics`` / ``fid_statistics_to_metric``,
``metric_isc.isc_features_to_metric``) is the library whose Inception port reproduces the TensorFlow FID/IS
numbers; using its maths keeps our values comparable with the numbers papers report (VAR#38: FID differs by
implementation). The trace of the matrix square root is taken from eigenvalues there; tests re-derive it with
``scipy.linalg.sqrtm``.
"""

from __future__ import annotations

import numpy as np
import torch


def feature_statistics(features: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
    """Mean and covariance (unbiased, ``np.cov``) of features ``[N, D]`` in float64."""
    from torch_fidelity.metric_fid import fid_features_to_statistics

    tensor = torch.as_tensor(np.asarray(features, dtype=np.float64))
    if tensor.dim() != 2 or tensor.shape[0] < 2:
        raise ValueError(f"expected features [N>=2, D], got shape {tuple(tensor.shape)}")
    return fid_features_to_statistics(tensor)


def frechet_distance(stats_a: dict[str, np.ndarray], stats_b: dict[str, np.ndarray]) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2) (Heusel et al. 2017, eq. 6)."""
    from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_statistics_to_metric

    a = {key: np.asarray(value, dtype=np.float64) for key, value in stats_a.items()}
    b = {key: np.asarray(value, dtype=np.float64) for key, value in stats_b.items()}
    return float(fid_statistics_to_metric(a, b, verbose=False)[KEY_METRIC_FID])


def inception_score(logits: np.ndarray | torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) over ``splits`` chunks (Salimans et al. 2016): (mean, std).

    torch-fidelity shuffles with its fixed seed (2020) before splitting, so the value is reproducible.
    """
    from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric

    tensor = torch.as_tensor(np.asarray(logits, dtype=np.float64))
    splits = max(1, min(splits, tensor.shape[0]))
    result = isc_features_to_metric(tensor, splits=splits)
    return float(result[KEY_METRIC_ISC_MEAN]), float(result[KEY_METRIC_ISC_STD])


def precision_recall(generated: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor, k: int = 3) -> dict:
    """Improved precision and recall (Kynkäänniemi et al. 2019, section 3): k-NN manifolds, k = 3.

    Each set's manifold is the union of balls around its points whose radius is the distance to the point's
    k-th nearest neighbour in the same set (itself excluded). Precision: the fraction of generated points inside
    the real manifold; recall: the fraction of real points inside the generated one. Same definition and k as
    OpenAI's guided-diffusion evaluator (``evaluations/evaluator.py``, ``ManifoldEstimator(nhood_sizes=(3,))``),
    which VAR's FID/IS/precision/recall numbers come from; the maths is torch-fidelity's
    (``metric_prc.prc_features_to_metric``), run here in float64 so ties resolve the same on every machine.
    """
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    fake = torch.as_tensor(np.asarray(generated, dtype=np.float64))
    true = torch.as_tensor(np.asarray(real, dtype=np.float64))
    for name, tensor in (("generated", fake), ("real", true)):
        if tensor.dim() != 2 or tensor.shape[0] <= k:
            raise ValueError(f"expected {name} features [N>{k}, D], got shape {tuple(tensor.shape)}")
    if fake.shape[1] != true.shape[1]:
        raise ValueError(f"feature sizes differ: generated {fake.shape[1]}, real {true.shape[1]}")
    result = prc_features_to_metric(fake, true, prc_neighborhood=k, save_cpu_ram=False, verbose=False)
    return {"precision": float(result[KEY_METRIC_PRECISION]), "recall": float(result[KEY_METRIC_RECALL])}
