"""Pyramid-Flow: pyramidal flow matching with a per-batch stage mix (Jin et al., "Pyramidal Flow Matching", 2024).

Modules, one job each: :mod:`.pyramid` (stage windows, timestep bands, the training pair, renoising: the math of
``pyramid_dit_for_video_gen_pipeline.py``), :mod:`.dit` (the class-conditional DiT, packed or unpacked stage segments),
:mod:`.latents` (pixel space or a diffusers autoencoder, with an optional latent cache), :mod:`.conditioning`
(optional precomputed text embeddings), :mod:`.sampling` (stage-by-stage Euler sampling with renoising) and
:mod:`.setup` (the ``pyramid_flow`` setup the engine drives).
"""
