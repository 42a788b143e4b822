"""VAR: next-scale prediction over a frozen multi-scale tokenizer's token pyramid (setup ``var``; FoundationVision/VAR).

Modules: ``attention`` (normalised self-attention, block-causal mask, KV cache), ``blocks`` (the adaLN transformer
block and the head's adaLN), ``model`` (the transformer, its configuration and VAR's initialisation), ``tokens``
(targets, teacher-forcing inputs and the loss weights of one stage), ``sampling`` (scale-by-scale generation with
classifier-free guidance, top-k / top-p), ``setup`` (the ``var`` setup: recipe fields, loss, metrics, sampling).
"""
