"""tinyllm.viz: figures and pages that look inside a trained model; tools a person runs.

    attention_maps.py   per-layer, per-head attention weights for a prompt (`tinyllm attention`) (§3)
    dashboard/          the sampling knobs live in a browser (`tinyllm dashboard`) (§5)
    kv_viz.py           which positions a prefix cache reused or computed, request by request (`tinyllm kv-viz`) (§6)
    tokens.py           colored token spans and ids of a text (`tinyllm tokenize`) (§1)

These sit on top of the library (they load runs, tokenizers, corpora); nothing in the library imports them.
Import the module you need; nothing is imported here.
"""
