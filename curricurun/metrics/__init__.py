"""Generative metrics: Fréchet distance and Inception Score from features, the evaluator's ``.npz`` layout,
and the feature networks (torch-fidelity's Inception, or a curricurun classifier for small-image domains)."""
