"""tinyllm tokenizers as Hugging Face ``tokenizer.json`` files, and back.

A tokenizer.json (the ``tokenizers`` library's format, which ``AutoTokenizer`` loads) is a
pipeline: normalizer -> pre_tokenizer -> model -> decoder, plus "added_tokens" (the special
tokens, matched in the text before anything else). tinyllm's two kinds map onto it:

    byte-level BPE (tiktoken's ranks)      pre_tokenizer  Split(the pattern, "Isolated"), then ByteLevel
                                           model          BPE: vocab = every rank's bytes as GPT-2's
                                                          printable characters (bytes_to_unicode), merges =
                                                          each token's two parts, in rank order;
                                                          ignore_merges = true (a piece that is a whole token
                                                          is that token, as tiktoken does)
                                           decoder        ByteLevel
    characters                             model          BPE with the characters as vocab and no merges:
                                                          each character is its own token
                                           decoder        Fuse (join the pieces, no spaces)

tiktoken keeps no merge list, only ranks: a token's two parts are found by running BPE on
its bytes with the merges of lower rank only (gguf_vocab.merges, as transformers' own
tiktoken converter does; GGUF needs the same list and the same byte alphabet). Both then
merge the same pairs in the same order, so both encode every text to the same ids (the
tests check it, special tokens included).

Reading back (tokenizer_from_hf) accepts those two shapes: a byte-level BPE whose merged
tokens' ids follow their merges' order (GPT-2's own tokenizer.json is one), split by a
pattern tinyllm knows (or any, with trust_pattern=True), or a character vocabulary.
Vocabulary entries that are neither bytes nor the product of a merge are special tokens.
Anything else (a SentencePiece tokenizer, a normalizer) raises an error that says so.

Example: bytes_to_unicode()[ord(" ")] == "Ġ", so the token b" the" is "Ġthe" in the vocab,
and ranks {..., b"ab": 256, b"abb": 257} give the merges "a b" and "ab b".
"""

from __future__ import annotations

from tinyllm.interop.gguf_vocab import bytes_to_unicode, merges, token_text
from tinyllm.tokenizer import BPETokenizer, CharTokenizer, Tokenizer
from tinyllm.tokenizer.patterns import GPT2_PATTERN, check_loaded_pattern

TOKENIZER_NAME = "tokenizer.json"
TOKENIZER_CONFIG_NAME = "tokenizer_config.json"
EOS_CANDIDATES = ("<|endoftext|>", "<|eot|>", "</s>", "<eos>", "<|end_of_text|>")


def _bytes_of(text: str, source: str) -> bytes:
    inverse = {c: b for b, c in bytes_to_unicode().items()}
    try:
        return bytes(inverse[c] for c in text)
    except KeyError as e:
        raise ValueError(f"{source}: vocabulary entry {text!r} has {e.args[0]!r}, not a byte-level character; "
                         "this is not a byte-level BPE tokenizer") from None


def _added(specials: dict[str, int]) -> list[dict]:
    return [dict(id=i, content=s, single_word=False, lstrip=False, rstrip=False, normalized=False, special=True)
            for s, i in sorted(specials.items(), key=lambda kv: kv[1])]


def _bpe_json(tok: BPETokenizer) -> dict:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    pre = byte_level if tok.pattern is None else {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": tok.pattern}, "behavior": "Isolated", "invert": False}, byte_level]}
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
             "vocab": {token_text(t): r for t, r in sorted(tok.ranks.items(), key=lambda kv: kv[1])},
             "merges": [f"{token_text(a)} {token_text(b)}" for a, b in merges(tok.ranks)]}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": _added(tok.special_tokens),
            "normalizer": None, "pre_tokenizer": pre, "post_processor": None, "decoder": dict(byte_level),
            "model": model}


def _char_json(tok: CharTokenizer) -> dict:
    model = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
             "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
             "vocab": {c: i for i, c in enumerate(tok.chars)}, "merges": []}
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": _added(tok.special_tokens),
            "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": {"type": "Fuse"},
            "model": model}


_WRITERS = {BPETokenizer.format: _bpe_json, CharTokenizer.format: _char_json}


def tokenizer_json(tok: Tokenizer) -> dict:
    """The tokenizer.json (as a dict) that encodes every text to the ids `tok` gives it."""
    return _WRITERS[tok.format](tok)


def eos_token(tok: Tokenizer) -> str | None:
    """The special token that ends a text, by its usual names ("<|endoftext|>", "</s>", ...), or None."""
    return next((s for s in EOS_CANDIDATES if s in tok.special_tokens), None)


def tokenizer_config(tok: Tokenizer, model_max_length: int) -> dict:
    """tokenizer_config.json: the plain fast tokenizer (no class that adds tokens of its own), no space clean-up."""
    eos = eos_token(tok)
    return {"tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model_max_length,
            "clean_up_tokenization_spaces": False, "eos_token": eos, "bos_token": eos}


# ----------------------------------------------------------------------------- reading

def _pattern(pre, source: str, trust_pattern: bool) -> str | None:
    """The split pattern of a byte-level pre_tokenizer: ByteLevel (regex: GPT-2's, or none) or Split + ByteLevel."""
    kind = pre.get("type") if isinstance(pre, dict) else None
    if kind == "ByteLevel":
        return GPT2_PATTERN if pre.get("use_regex", True) else None
    steps = pre.get("pretokenizers") if kind == "Sequence" else None
    if isinstance(steps, list) and len(steps) == 2 and steps[0].get("type") == "Split" \
            and steps[1].get("type") == "ByteLevel" and not steps[1].get("use_regex", True) \
            and steps[0].get("behavior") == "Isolated" and not steps[0].get("invert") \
            and isinstance(steps[0].get("pattern"), dict) and isinstance(steps[0]["pattern"].get("Regex"), str):
        return check_loaded_pattern(steps[0]["pattern"]["Regex"], source, trust_pattern)
    raise ValueError(f"{source}: pre_tokenizer {kind!r} is not one tinyllm reads (ByteLevel, or a Split regex then "
                     "ByteLevel, as GPT-2's and tiktoken-style tokenizers have)")


def tokenizer_from_hf(d: dict, source: str = TOKENIZER_NAME, trust_pattern: bool = False) -> Tokenizer:
    """The tinyllm tokenizer of a tokenizer.json dict (byte-level BPE or characters; see the module docstring)."""
    model = d.get("model") if isinstance(d, dict) else None
    if not isinstance(model, dict) or model.get("type") != "BPE" or not isinstance(model.get("vocab"), dict):
        kind = model.get("type") if isinstance(model, dict) else None
        raise ValueError(f"{source}: its model is {kind!r}; tinyllm reads BPE tokenizers (byte-level, or one "
                         "character per token), not SentencePiece/Unigram/WordPiece ones")
    if d.get("normalizer") is not None:
        raise ValueError(f"{source}: it normalizes text first ({d['normalizer'].get('type')}); tinyllm's tokenizers "
                         "encode the text as given")
    added = {a["content"]: a["id"] for a in d.get("added_tokens") or [] if isinstance(a, dict)}
    vocab, merges = model["vocab"], model.get("merges") or []
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in merges]
    decoder = (d.get("decoder") or {}).get("type")
    if decoder != "ByteLevel":  # one character per token
        if merges or d.get("pre_tokenizer") is not None:
            raise ValueError(f"{source}: a BPE tokenizer with merges but no ByteLevel decoder; tinyllm reads "
                             "byte-level BPE or character vocabularies")
        chars = sorted((t for t in vocab if t not in added), key=lambda t: vocab[t])
        specials = sorted(added, key=added.get)
        if any(len(c) != 1 for c in chars) or chars != sorted(chars) or [vocab[c] for c in chars] != list(
                range(len(chars))) or [added[s] for s in specials] != list(range(len(chars), len(chars) + len(added))):
            raise ValueError(f"{source}: a vocabulary without merges is read as characters, which must be single "
                             "characters with ids 0.. in code-point order, then the special tokens")
        return CharTokenizer(chars, specials)
    pattern = _pattern(d.get("pre_tokenizer"), source, trust_pattern)
    made = {a + b for a, b in merges}
    ranks, specials = {}, dict(added)
    for text, i in vocab.items():
        if text in added:
            continue
        if len(text) == 1 or text in made:
            ranks[_bytes_of(text, source)] = i
        else:  # neither a byte nor a merge's product: a special token stored in the vocab
            specials[text] = i
    merged_ids = [vocab.get(a + b) for a, b in merges]
    if None in merged_ids or merged_ids != sorted(merged_ids):
        raise ValueError(f"{source}: its merged tokens' ids do not follow the order of its merges, so tiktoken-style "
                         "ranks (id = merge order) cannot express it")
    return BPETokenizer(ranks, pattern, specials, name="hf-bpe")
