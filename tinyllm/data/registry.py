"""The corpus registry: a name -> (canonical URL, sha256) table, a verified download, a cache.

A corpus is a public text file we never ship with the package. On first use it is
fetched from its canonical URL, its SHA-256 is checked against the digest written
here, and only then is it moved into the cache, so a half-downloaded or tampered
file can never be read as data:

    urlopen(url) --stream--> CACHE/.tinyshakespeare.txt.XXXX.part   (hashing as it writes)
                 sha256 == expected ?  os.replace(part, CACHE/tinyshakespeare.txt)
                                    :  delete the part, raise ChecksumError

``os.replace`` is atomic on one filesystem (the temporary file sits in the cache
folder itself), so another process sees either no file or the whole verified file.

Where a corpus is looked for, in order:

    1. $TINYLLM_DATA_DIR/<file>      local copies (offline machines, CI); verified too
    2. the cache folder               $TINYLLM_CACHE_DIR, else $XDG_CACHE_HOME/tinyllm,
                                      else ~/.cache/tinyllm
    3. the canonical URL              downloaded into the cache folder

Example::

    >>> p = corpus_path("tinyshakespeare")        # doctest: +SKIP
    >>> p                                         # first call downloads, later calls reuse
    PosixPath('/home/me/.cache/tinyllm/tinyshakespeare.txt')
    >>> sha256_file(p)
    '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed'
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

DATA_DIR_ENV = "TINYLLM_DATA_DIR"
CACHE_DIR_ENV = "TINYLLM_CACHE_DIR"


@dataclass(frozen=True)
class Corpus:
    """One downloadable text corpus: where it lives and the digest of the exact bytes we expect."""

    name: str
    url: str
    sha256: str
    filename: str
    description: str = ""


# The registered corpora. Tests add their own entries (file:// URLs) with pytest's monkeypatch.
CORPORA: dict[str, Corpus] = {
    c.name: c
    for c in (
        Corpus(
            name="tinyshakespeare",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            filename="tinyshakespeare.txt",
            description="Tiny Shakespeare (char-rnn / nanoGPT), 1,115,394 bytes",
        ),
        Corpus(
            name="names",
            url="https://raw.githubusercontent.com/karpathy/makemore/master/names.txt",
            sha256="0a30b5557f192f32ab962680889aac5f6fda0f4cecf40a6d0b5694f58ea8cc4d",
            filename="names.txt",
            description="32,032 first names, one per line (makemore), 228,145 bytes",
        ),
    )
}


class DataError(ValueError):
    """A corpus that cannot be used: unknown name, bad file, wrong checksum."""


class ChecksumError(DataError):
    """A file whose SHA-256 is not the one the registry expects."""


class DownloadError(DataError, OSError):
    """A corpus that could not be fetched (offline, HTTP error, timeout)."""


def cache_dir() -> Path:
    """The folder downloaded corpora are kept in: $TINYLLM_CACHE_DIR, $XDG_CACHE_HOME/tinyllm or ~/.cache/tinyllm."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "tinyllm"
    return Path.home() / ".cache" / "tinyllm"


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks (a corpus never has to fit in memory twice)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            h.update(chunk)
    return h.hexdigest()


def _get(name: str) -> Corpus:
    try:
        return CORPORA[name]
    except KeyError:
        raise DataError(
            f"unknown corpus {name!r}; registered corpora: {', '.join(sorted(CORPORA))}"
        ) from None


def _verify(path: Path, corpus: Corpus, where: str) -> Path:
    got = sha256_file(path)
    if got != corpus.sha256:
        raise ChecksumError(
            f"{path} ({where}) does not match the registered corpus {corpus.name!r}: "
            f"sha256 {got}, expected {corpus.sha256}. The file is corrupt, truncated or a different "
            f"version; replace it with a fresh copy of {corpus.url}"
        )
    return path


def download(corpus: Corpus, dest_dir: str | os.PathLike, timeout: float = 60.0) -> Path:
    """Fetch `corpus.url` into dest_dir/corpus.filename, verified, atomically; returns the path.

    The bytes stream into a temporary file in dest_dir while being hashed. On a
    digest mismatch or any error the temporary file is deleted, so dest_dir never
    holds a partial or unverified corpus.
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / corpus.filename
    fd, tmp_name = tempfile.mkstemp(dir=dest_dir, prefix=f".{corpus.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(corpus.url, timeout=timeout) as resp:
                while chunk := resp.read(1 << 16):
                    h.update(chunk)
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
        except (urllib.error.URLError, OSError, ValueError) as e:
            # subtle: URLError is an OSError; ValueError covers a malformed URL.
            raise DownloadError(
                f"could not download corpus {corpus.name!r} from {corpus.url}: {e}. If this machine is "
                f"offline, put a copy of the file named {corpus.filename!r} in a folder and set "
                f"{DATA_DIR_ENV}=/path/to/that/folder"
            ) from e
        got = h.hexdigest()
        if got != corpus.sha256:
            raise ChecksumError(
                f"downloaded {corpus.url} for corpus {corpus.name!r} but its sha256 is {got}, expected "
                f"{corpus.sha256}; nothing was written to {dest_dir}. The file at the URL changed or "
                f"the download was corrupted; try again, or set {DATA_DIR_ENV} to a folder holding a "
                f"verified copy named {corpus.filename!r}"
            )
        os.replace(tmp, target)  # atomic: readers see no file or the whole verified file
    finally:
        tmp.unlink(missing_ok=True)
    return target


def corpus_path(name: str, *, download_if_missing: bool = True) -> Path:
    """The local path of a registered corpus, verified against its sha256; downloads it on first use.

    Looks in $TINYLLM_DATA_DIR first, then the cache folder, then downloads into
    the cache. A local copy with the wrong checksum is an error (never silently
    replaced); a cached copy with the wrong checksum is deleted and fetched again.
    """
    corpus = _get(name)
    data_dir = os.environ.get(DATA_DIR_ENV)
    if data_dir:
        local = Path(data_dir).expanduser() / corpus.filename
        if local.is_file():
            return _verify(local, corpus, f"from {DATA_DIR_ENV}")

    cached = cache_dir() / corpus.filename
    if cached.is_file():
        try:
            return _verify(cached, corpus, "in the cache")
        except ChecksumError:
            # subtle: only the cache is ours to repair; a bad TINYLLM_DATA_DIR copy above is the user's file.
            cached.unlink()
    if not download_if_missing:
        raise DataError(
            f"corpus {name!r} is not in {DATA_DIR_ENV} ({data_dir or 'unset'}) nor in the cache "
            f"({cached}); allow the download or set {DATA_DIR_ENV} to a folder holding {corpus.filename!r}"
        )
    return download(corpus, cache_dir())


# ----------------------------------------------------------------------------- name or path -> text

BUILTIN = ("stories",)


def available_corpora() -> list[str]:
    """Every name load_text accepts besides a path: the built-in corpus and the registered downloads."""
    return list(BUILTIN) + sorted(CORPORA)


def _read_text_file(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(
            f"{path} is not UTF-8 text: byte {data[e.start]:#04x} at offset {e.start} cannot be decoded "
            f"({e.reason}); convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8) or remove it"
        ) from None
    # subtle: a byte-order mark and Windows line ends would otherwise become tokens of their own.
    text = text.removeprefix("\ufeff").replace("\r\n", "\n")
    if not text.strip():
        raise DataError(f"{path} is empty (or only whitespace); a corpus needs some text")
    return text


def load_text(name_or_path: str | os.PathLike = "stories") -> str:
    """The text of a corpus: "stories" (built in), a registered name, a text file, or a folder.

    "stories"                    generate_stories() -- about 500 KB, offline, deterministic
    "tinyshakespeare", "names"   corpus_path(name), downloaded and verified on first use
    path/to/file.txt             the file, decoded as UTF-8 (a BOM dropped, CRLF -> LF)
    path/to/folder               every *.txt below it (recursively), sorted by relative
                                 path, joined with exactly one blank line

    A name wins over a file of the same name in the working directory; write
    "./stories" to mean the file. Registered corpora are read byte-exact.
    """
    if isinstance(name_or_path, str) and name_or_path in BUILTIN:
        from tinyllm.data.synthetic.stories import generate_stories

        return generate_stories()
    if isinstance(name_or_path, str) and name_or_path in CORPORA:
        return corpus_path(name_or_path).read_bytes().decode("utf-8")
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return _read_text_file(path)
    if path.is_dir():
        files = sorted((p for p in path.rglob("*.txt") if p.is_file()), key=lambda p: p.relative_to(path).as_posix())
        if not files:
            raise DataError(f"the folder {path} holds no .txt files; put the corpus in files ending in .txt")
        # one blank line between files, whatever newlines each file ends with
        return "\n\n".join(_read_text_file(p).rstrip("\n") for p in files) + "\n"
    raise DataError(
        f"unknown corpus {str(name_or_path)!r}: not one of the corpora ({', '.join(available_corpora())}) "
        f"and no file or folder at {path.resolve()}"
    )
