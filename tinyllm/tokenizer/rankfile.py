"""Tokenizer files: tiktoken's rank file plus a JSON sidecar.

A byte-level BPE vocabulary is a map token bytes -> rank (= token id). tiktoken
stores it as text, one token per line, base64 of the bytes, a space, the rank::

    IQ== 0            <- b"!"   (GPT-2's first token)
    IHRoZQ== 262      <- b" the"

That file alone cannot encode: the split pattern and the special tokens live in
tiktoken's code. We keep them in a sidecar next to the rank file
(``tokenizer.tiktoken`` -> ``tokenizer.tiktoken.json``)::

    {"format": "tinyllm-bpe", "format_version": 1, "pattern": "...", "pattern_name": "gpt2",
     "special_tokens": {"<|endoftext|>": 50256}, "n_ranks": 50256, "rank_file_sha256": "..."}

Reading checks what a BPE vocabulary must satisfy, and names the line that breaks it:
every line "<base64> <rank>", no token or rank twice, ranks 0..N-1 without gaps,
all 256 single bytes present, and every longer token buildable: some split of its
bytes into two tokens that both have a lower rank (the merge that made it). The
sidecar's hash of the rank file catches a rank file replaced without its sidecar.
Both files may come from a stranger: neither may be a symbolic link, the sidecar's
JSON is depth-bounded, its "rank_file" must be a plain name, and its split pattern
must be a known one unless the caller passes trust_pattern=True (patterns.py says why).
Writes are atomic, as every tinyllm file's (tinyllm.serialization.write_atomic).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from pathlib import Path

from tinyllm.serialization import check_file_name, parse_json, read_regular_file, write_atomic

from .patterns import check_loaded_pattern

FORMAT = "tinyllm-bpe"
FORMAT_VERSION = 1
MAX_SPECIAL_GAP = 2**16  # a loaded special token's id is < n_ranks + this (tiktoken's leave gaps of ~20)


class RankFileError(ValueError):
    """A rank file or its sidecar is malformed or inconsistent (the message names the file and line)."""


def sidecar_path(path) -> Path:
    """The JSON sidecar of a rank file: tokenizer.tiktoken -> tokenizer.tiktoken.json."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def validate_ranks(entries, source: str = "ranks") -> dict[bytes, int]:
    """Check a vocabulary given as (token bytes, rank, where) triples; return it as a dict bytes -> rank.

    `where` names the entry in errors ("line 12"). See the module docstring for the rules.
    validate_ranks([(bytes([i]), i, f"rank {i}") for i in range(256)]) -> {b"\\x00": 0, ...}
    """
    ranks: dict[bytes, int] = {}
    where_token: dict[bytes, str] = {}
    where_rank: dict[int, str] = {}
    for token, rank, where in entries:
        if not isinstance(token, (bytes, bytearray)) or len(token) == 0:
            raise RankFileError(f"{source}, {where}: a token must be non-empty bytes, got {token!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise RankFileError(f"{source}, {where}: a rank must be an int >= 0, got {rank!r}")
        token = bytes(token)
        if token in ranks:
            raise RankFileError(f"{source}, {where}: token {token!r} appears twice (also at {where_token[token]})")
        if rank in where_rank:
            raise RankFileError(f"{source}, {where}: rank {rank} appears twice (also at {where_rank[rank]})")
        ranks[token] = rank
        where_token[token] = where
        where_rank[rank] = where
    n = len(ranks)
    if n and max(where_rank) != n - 1:
        missing = next(r for r in range(n) if r not in where_rank)
        raise RankFileError(f"{source}: ranks must be 0..{n - 1} without gaps, but rank {missing} is missing "
                            f"(largest rank {max(where_rank)})")
    missing_bytes = [b for b in range(256) if bytes([b]) not in ranks]
    if missing_bytes:
        raise RankFileError(f"{source}: byte-level BPE needs a token for each of the 256 bytes; "
                            f"{len(missing_bytes)} are missing, e.g. byte 0x{missing_bytes[0]:02x}")
    lengths = sorted({len(t) for t in ranks})  # a split can only be at a length some token has
    for token, rank in ranks.items():
        if len(token) > 1 and not _buildable(token, rank, ranks, lengths):
            raise RankFileError(f"{source}, {where_token[token]}: token {token!r:.120} (rank {rank}) is not two "
                                "earlier tokens joined: no split of its bytes into two tokens of lower rank")
    return ranks


def _buildable(token: bytes, rank: int, ranks: dict[bytes, int], lengths: list[int]) -> bool:
    # subtle: trying every k would cost len(token)² (a slice and a hash per k): a hostile file with one
    # megabyte-long token would take minutes. Only the lengths that tokens have can be a left part.
    n = len(token)
    for k in lengths:
        if k >= n:
            break
        left, right = ranks.get(token[:k]), ranks.get(token[k:])
        if left is not None and right is not None and left < rank and right < rank:
            return True
    return False


def check_ranks(ranks: dict[bytes, int], source: str = "ranks") -> dict[bytes, int]:
    """validate_ranks for a dict (errors name the rank)."""
    if not isinstance(ranks, dict):
        raise TypeError(f"{source} must be a dict bytes -> int, got {type(ranks).__name__}")
    return validate_ranks(((t, r, f"rank {r}") for t, r in ranks.items()), source)


def read_ranks(path) -> dict[bytes, int]:
    """Read and check a tiktoken rank file (errors name the line). The path is the caller's own (from_tiktoken,
    BPETokenizer.gpt2), so a symbolic link is followed; a run folder's rank file (load) may not be one."""
    path = Path(path)
    try:
        data = read_regular_file(path, "rank file", follow_symlinks=True)
    except FileNotFoundError:
        raise FileNotFoundError(f"no rank file at {path}") from None
    return validate_ranks(_parse(data, str(path)), str(path))


def _parse(data: bytes, source: str):
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        fields = [f.decode("ascii", "replace") for f in line.split()]
        if len(fields) != 2:
            raise RankFileError(f"{source}, line {line_no}: expected '<base64 token> <rank>', "
                                f"got {line[:80].decode('utf-8', 'replace')!r}")
        try:
            token = base64.b64decode(fields[0], validate=True)
        except (binascii.Error, ValueError) as e:
            raise RankFileError(f"{source}, line {line_no}: bad base64 {fields[0][:80]!r} ({e})") from None
        try:
            rank = int(fields[1])
        except ValueError:
            raise RankFileError(f"{source}, line {line_no}: the rank {fields[1][:40]!r} is not an integer") from None
        yield token, rank, f"line {line_no}"


def format_ranks(ranks: dict[bytes, int]) -> bytes:
    """The rank file's text: one "<base64 token> <rank>" line per token, by rank."""
    return b"".join(base64.b64encode(t) + b" %d\n" % r for t, r in sorted(ranks.items(), key=lambda kv: kv[1]))


def save(path, ranks: dict[bytes, int], pattern: str | None, special_tokens: dict[str, int]) -> None:
    """Write the rank file at path and its sidecar (sidecar_path(path)), each atomically."""
    from .patterns import pattern_name

    path = Path(path)
    if not path.parent.exists():
        raise FileNotFoundError(f"cannot save a tokenizer to {path}: the folder {path.parent} does not exist")
    data = format_ranks(ranks)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "pattern": pattern,
        "pattern_name": pattern_name(pattern),
        "special_tokens": dict(special_tokens),
        "n_ranks": len(ranks),
        "rank_file": path.name,
        "rank_file_sha256": hashlib.sha256(data).hexdigest(),
    }
    write_atomic(path, data)
    write_atomic(sidecar_path(path), (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def load(path, trust_pattern: bool = False) -> tuple[dict[bytes, int], str | None, dict[str, int]]:
    """Read a rank file and its sidecar -> (ranks, pattern, special_tokens), all checked.

    trust_pattern=True accepts a split pattern tinyllm does not know (it runs as a regex on every text).
    """
    path = Path(path)
    side = sidecar_path(path)
    if not side.exists() and not side.is_symlink():
        raise FileNotFoundError(f"no sidecar {side} next to {path}; for a bare tiktoken rank file use "
                                "BPETokenizer.from_tiktoken(path, pattern=...)")
    try:
        meta = parse_json(read_regular_file(side, "tokenizer sidecar").decode("utf-8"), str(side))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RankFileError(f"{side}: not valid JSON ({e})") from None
    except ValueError as e:  # nested too deep (parse_json's message names the file)
        raise RankFileError(str(e)) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise RankFileError(f"{side}: not a tinyllm tokenizer sidecar (expected \"format\": \"{FORMAT}\")")
    if meta.get("format_version") != FORMAT_VERSION:
        raise RankFileError(f"{side}: format_version {meta.get('format_version')!r} is not supported "
                            f"(this tinyllm reads version {FORMAT_VERSION})")
    if "rank_file" in meta:
        check_file_name(meta["rank_file"], f"{side}: rank file")
    try:
        data = read_regular_file(path, "rank file")
    except FileNotFoundError:
        raise FileNotFoundError(f"no rank file at {path} (its sidecar {side} exists)") from None
    if meta.get("rank_file_sha256") not in (None, hashlib.sha256(data).hexdigest()):
        raise RankFileError(f"{path} does not match its sidecar {side} (sha256 differs): "
                            "the rank file was changed or replaced without its sidecar")
    ranks = validate_ranks(_parse(data, str(path)), str(path))
    if meta.get("n_ranks") not in (None, len(ranks)):
        raise RankFileError(f"{side}: says {meta['n_ranks']} ranks but {path} has {len(ranks)}")
    pattern = meta.get("pattern")
    if pattern is not None and not isinstance(pattern, str):
        raise RankFileError(f"{side}: \"pattern\" must be a regex string or null, got {pattern!r}")
    pattern = check_loaded_pattern(pattern, str(side), trust_pattern)
    special = meta.get("special_tokens", {})
    if not isinstance(special, dict) or not all(isinstance(k, str) and isinstance(v, int) for k, v in special.items()):
        raise RankFileError(f"{side}: \"special_tokens\" must map strings to integer ids")
    limit = len(ranks) + MAX_SPECIAL_GAP
    too_big = [(k, v) for k, v in special.items() if v >= limit]
    if too_big:  # subtle: the id table has vocab_size entries, so an id of 10**12 would be a MemoryError later
        k, v = too_big[0]
        raise RankFileError(f"{side}: special token {k!r:.80} has id {v}, far past the {len(ranks)} ranks (the limit "
                            f"is {limit:,} = ranks + MAX_SPECIAL_GAP); special ids follow the ranks: fix the id")
    return ranks, pattern, special
