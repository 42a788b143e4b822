"""VAR's VQ-VAE: multi-scale residual tokenizer, trained end to end (setup ``vqvae``; VAR ``models/quant.py``).

Modules: ``model`` (encoder/decoder), ``quantizer`` (multi-scale residual and single-scale VQ), ``codebook``
(EMA updates, k-means init, dead-code restart), ``vqvae`` (the model and its configuration), ``metrics``
(MSE, PSNR, code usage, perplexity), ``tokenizer`` (the frozen exported tokenizer VAR trains on), ``setup``.
"""
