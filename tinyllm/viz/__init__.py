"""tinyllm.viz: figures that look inside a trained model.

    attention_maps.py   per-layer, per-head attention weights for a prompt (`tinyllm attention`) (§3)

Import the module you need; nothing is imported here.
"""
