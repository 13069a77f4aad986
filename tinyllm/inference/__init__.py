"""tinyllm.inference: what happens after training, when a model writes text.

    sampling.py       logits -> the next token: temperature, top-k, top-p, min-p, penalties (§5)
    kv_cache.py       KVCache: keys and values of past positions, so each new token costs one position (§6)
    rolling_cache.py  RollingKVCache: a sliding window's cache, the last window positions only (§7)
    generate.py       the generation loop: prefill, then one token at a time through the cache (GPT.generate)
    decode.py         Decoder: a decode step on raw arrays, the whole model, no per-op wrappers (model.make_decoder)
    prefix_cache.py   a block cache shared across requests with a common prefix (§6)

Written against the model's interface (``next_token_logits``, ``make_cache``, ``make_decoder``), never against
``tinyllm.nn``: the models import this layer (``model.generate``), not the other way round, as
Hugging Face's generation code sits under its models. What draws or serves a model (`tinyllm
kv-viz`, `tinyllm dashboard`) is a tool, in ``tinyllm.viz``.

Import the module you need (``from tinyllm.inference.kv_cache import KVCache``); nothing is imported here.
"""
