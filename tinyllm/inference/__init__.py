"""tinyllm.inference: what happens after training, when a model writes text.

    kv_cache.py       KVCache: keys and values of past positions, so each new token costs one position (§6)
    prefix_cache.py   a block cache shared across requests with a common prefix (§6)
    kv_viz.py         which positions each request reused or computed (`tinyllm kv-viz`)
    sampling.py       logits -> the next token: temperature, top-k, top-p, min-p, penalties (§5)
    dashboard/        `tinyllm dashboard`: the sampling knobs live in a browser (§5)

Import the module you need (``from tinyllm.inference.kv_cache import KVCache``); nothing is imported here.
"""
