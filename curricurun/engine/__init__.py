"""The Accelerate training engine: loop, checkpoints, evaluation and reporting."""
