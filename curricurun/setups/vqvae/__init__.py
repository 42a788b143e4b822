"""VAR's VQ-VAE: multi-scale residual tokenizer, trained end to end (setup ``vqvae``; research/var.md §4).

Modules: ``model`` (encoder/decoder), ``quantizer`` (multi-scale residual and single-scale VQ), ``codebook``
(EMA updates, k-means init, dead-code restart), ``vqvae`` (the model and its configuration), ``metrics``
(MSE, PSNR, code usage, perplexity), ``tokenizer`` (the frozen exported tokenizer VAR trains on), ``setup``.
"""
