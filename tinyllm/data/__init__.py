"""Data: corpora (built-in, downloaded and verified, or your own files), tokenization, batches.

    text = load_text("stories")                  # or "tinyshakespeare", "names", a file, a folder
    tok, ds = prepare_data("stories", "char")    # tokenizer + 90/10 train/val token arrays
    x, y = ds.get_batch("train", 12, 64, np.random.default_rng(0))   # int64 (12, 64) each

Modules: ``registry`` (download + sha256 + cache, load_text), ``synthetic.stories``
(the story grammar; ``tinyllm.data.stories`` names it too), ``dataset``
(build_tokenizer, token arrays, .bin files, split, batches), ``tasks`` (toy copy /
reverse / sort sequences, scored on the answer tokens only). The tokenizers and their files live in tinyllm.tokenizer;
CharTokenizer, load_tokenizer and save_tokenizer are re-exported here.

Preparing a corpus (import these modules directly; nothing of them is loaded here):
``documents`` (JSONL and text corpora, streamed a document at a time), ``clean``
(normalization and filters, with ``quality``: Gopher's rules), ``dedup`` (exact and
MinHash + LSH near-duplicates, on ``shingles``, ``minhash`` and the exact ``jaccard``
they are measured against), ``synthetic`` (generated data).
"""

from tinyllm.data.dataset import (
    TokenDataset,
    build_tokenizer,
    check_tokens,
    encode_corpus,
    encode_text,
    get_batch,
    load_tokens,
    prepare_data,
    save_tokens,
    split_tokens,
    token_dtype,
)
from tinyllm.data.registry import (
    CORPORA,
    ChecksumError,
    Corpus,
    DataError,
    DownloadError,
    available_corpora,
    cache_dir,
    corpus_path,
    load_text,
    sha256_file,
)
from tinyllm.data.synthetic import stories
from tinyllm.data.synthetic.stories import generate_stories
from tinyllm.tokenizer import CharTokenizer, load_tokenizer, save_tokenizer

__all__ = [
    "CORPORA", "CharTokenizer", "ChecksumError", "Corpus", "DataError", "DownloadError", "TokenDataset",
    "available_corpora", "build_tokenizer", "cache_dir", "check_tokens", "corpus_path", "encode_corpus", "encode_text",
    "generate_stories", "get_batch", "load_text", "load_tokenizer", "load_tokens", "prepare_data",
    "save_tokenizer", "save_tokens", "sha256_file", "split_tokens", "token_dtype",
]
