"""Weights named by URL: a local cache, downloads with a progress bar, checksums.

`resolve_weights(path_or_url)` turns what a config or a flag names into a local file:
a path must exist (a missing file is an error, never a reason to train from scratch); a
URL (http, https, file) maps to `$PYDETECTRON_CACHE/<URL path>` (default cache
`~/.cache/pydetectron`), e.g. Detectron's
`https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl` ->
`~/.cache/pydetectron/detectron/ImageNetPretrained/MSRA/R-50.pkl`, downloaded once.

Checksums are only ever taken from the caller (`md5=` / `sha256=`), from the URL's file
name (torchvision's `name-<sha256 prefix>.ext`, at least 8 hex digits) or from the
server next to the file (Detectron's `<url>.md5sum`); no table of digests is kept here.
A download goes to a temporary file in the cache folder and is renamed into place only
once complete and verified, so an interrupted or wrong download leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from tqdm import tqdm

from .errors import WeightsDownloadError, WeightsNotFoundError

logger = logging.getLogger(__name__)

CACHE_ENV = "PYDETECTRON_CACHE"
DEFAULT_CACHE = "~/.cache/pydetectron"
URL_SCHEMES = ("http", "https", "file")
_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[^/]*$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_CHUNK = 1 << 20
_TIMEOUT_S = 60


def is_url(path_or_url: str | os.PathLike) -> bool:
    """True for an http(s):// or file:// URL."""
    if not isinstance(path_or_url, str):
        return False
    return urllib.parse.urlsplit(path_or_url).scheme.lower() in URL_SCHEMES


def cache_dir() -> Path:
    """`$PYDETECTRON_CACHE`, else `~/.cache/pydetectron`."""
    return Path(os.path.expanduser(os.environ.get(CACHE_ENV) or DEFAULT_CACHE))


def cache_path(url: str, root: str | os.PathLike | None = None) -> Path:
    """Where `url` is kept: `<cache>/<URL path>` (the path part, '..' and empty parts refused)."""
    parts = [urllib.parse.unquote(p) for p in urllib.parse.urlsplit(url).path.split("/") if p]
    if not parts or any(p in (".", "..") or "\\" in p or "\0" in p for p in parts):
        raise WeightsDownloadError(f"{url}: the URL path cannot name a file in the weights cache")
    return Path(root if root is not None else cache_dir()).joinpath(*parts)


def file_digest(path: str | os.PathLike, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_prefix_in_name(url: str) -> str | None:
    """The sha256 prefix torchvision puts in file names (`resnet50-0676ba61.pth`), else None."""
    match = _HASH_IN_NAME.search(urllib.parse.urlsplit(url).path)
    return match.group(1) if match else None


def published_md5(url: str) -> str | None:
    """Detectron's convention: the md5 of `<url>` in the text file `<url>.md5sum`, when the server has one."""
    try:
        with urllib.request.urlopen(url + ".md5sum", timeout=_TIMEOUT_S) as response:
            text = response.read(256).decode("ascii", "replace").strip()
    except (OSError, ValueError, http.client.HTTPException):
        return None
    token = text.split()[0].lower() if text else ""
    return token if _MD5.match(token) else None


class _Expected:
    """The checksums a file must match (any of md5, sha256 or a sha256 prefix)."""

    def __init__(self, md5: str | None = None, sha256: str | None = None, sha256_prefix: str | None = None):
        self.md5 = md5.lower() if md5 else None
        self.sha256 = sha256.lower() if sha256 else None
        self.sha256_prefix = sha256_prefix.lower() if sha256_prefix else None

    def __bool__(self) -> bool:
        return bool(self.md5 or self.sha256 or self.sha256_prefix)

    def mismatch(self, path: Path) -> str | None:
        """None when `path` matches every known checksum, else a description of the difference."""
        if self.md5:
            got = file_digest(path, "md5")
            if got != self.md5:
                return f"md5 {got}, expected {self.md5}"
        if self.sha256 or self.sha256_prefix:
            got = file_digest(path, "sha256")
            if self.sha256 and got != self.sha256:
                return f"sha256 {got}, expected {self.sha256}"
            if self.sha256_prefix and not got.startswith(self.sha256_prefix):
                return f"sha256 {got}, expected one starting with {self.sha256_prefix} (from the file name)"
        return None


def _copy_response(response, handle, url: str, name: str, progress: bool) -> int:
    total = response.headers.get("Content-Length") if hasattr(response, "headers") else None
    total = int(total) if total and total.isdigit() else None
    received = 0
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=name, disable=not progress) as bar:
        while True:
            chunk = response.read(_CHUNK)
            if not chunk:
                break
            handle.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))
    if total is not None and received != total:
        raise WeightsDownloadError(f"{url}: the download stopped after {received} of {total} bytes")
    return received


def download(url: str, target: Path, expected: _Expected, progress: bool = True) -> Path:
    """Fetch `url` into `target` atomically (temporary file + rename); verify `expected` first."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            try:
                with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response:
                    _copy_response(response, handle, url, target.name, progress)
            except WeightsDownloadError:
                raise
            except (OSError, ValueError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", None) or error
                raise WeightsDownloadError(
                    f"could not download {url} ({reason}); download it yourself and put it at {target}"
                ) from None
            handle.flush()
            os.fsync(handle.fileno())
        problem = expected.mismatch(tmp)
        if problem:
            raise WeightsDownloadError(f"{url}: checksum mismatch ({problem}); nothing was saved in {target.parent}")
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    logger.info("Downloaded %s to %s", url, target)
    return target


def resolve_weights(
    path_or_url: str | os.PathLike,
    md5: str | None = None,
    sha256: str | None = None,
    cache_root: str | os.PathLike | None = None,
    progress: bool = True,
) -> str:
    """A local file for `path_or_url`: the path itself (which must exist) or the cached URL.

    A URL is downloaded on first use (see the module notes for checksums); a cached copy
    is checked against the checksums the caller or the file name gives. Raises
    WeightsNotFoundError for a missing local file and WeightsDownloadError (one line,
    naming the URL and where to put the file by hand) when the download fails.
    """
    if not is_url(path_or_url):
        path = os.path.expanduser(os.fspath(path_or_url))
        if not path:
            raise WeightsNotFoundError("no weights file given (empty path)")
        if not os.path.isfile(path):
            raise WeightsNotFoundError(f"weights file not found: {path}")
        return path
    url = str(path_or_url)
    target = cache_path(url, cache_root)
    expected = _Expected(md5, sha256, sha256_prefix_in_name(url))
    if target.is_file():
        problem = expected.mismatch(target) if expected else None
        if problem:
            raise WeightsDownloadError(
                f"{target} (cached from {url}) fails its checksum ({problem}); delete it to download it again"
            )
        return str(target)
    if not expected:
        expected.md5 = published_md5(url)
    logger.info("Downloading %s to %s", url, target)
    return str(download(url, target, expected, progress))
