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
