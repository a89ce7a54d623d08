"""Resumable, verified HTTP(S) download with the standard library only.

The body is streamed to `<dest>.part` and renamed to `dest` only after its size (and SHA-256,
when given) check out, so a file at `dest` is always a verified one and an interrupted run
leaves only a `.part` that the next run resumes with an HTTP Range request. TLS certificates
are always verified (the default SSL context); a broken certificate is reported with a way
round it that keeps verification on (download by hand, then `data.source: local`).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import ssl
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from respiro.core.errors import DownloadError

CHUNK = 1 << 20
USER_AGENT = "icbhi-resnet-cbam (python urllib)"
# Answers that say "try again later" rather than "this will never work".
_TRANSIENT_STATUS = frozenset({408, 429})
_CONTENT_RANGE = re.compile(r"^bytes\s+(?:(?P<start>\d+)-\d+|\*)/(?P<total>\d+|\*)$")


@dataclass(frozen=True)
class Retries:
    """How hard a download tries: a transient failure is retried after `backoff * 2**k`
    seconds, up to `retries` failed attempts in a row; `timeout` seconds per read."""

    retries: int = 5
    backoff: float = 1.0
    timeout: float = 60


class _Interrupted(Exception):
    """A transient failure worth retrying: connection refused or dropped, timeout, 5xx."""


def _part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """(first byte, total size) of a Content-Range header; None for a part it leaves out."""
    match = _CONTENT_RANGE.match((header or "").strip())
    if match is None:
        return None, None
    start, total = match["start"], match["total"]
    return (int(start) if start else None), (int(total) if total != "*" else None)


def _tls_message(url: str, err: ssl.SSLCertVerificationError) -> str:
    return (
        f"{url}: the server's TLS certificate could not be verified ({err.verify_message or err}). "
        "The ICBHI server's certificate has been reported broken at times; this project never turns "
        f"certificate checks off. Download the file by hand (in a browser, or `curl -O {url}`), "
        "keeping ICBHI_final_database.zip and ICBHI_challenge_train_test.txt side by side, then run "
        "`dvc exp run -S data.source=local -S data.local_path=/path/to/ICBHI_final_database.zip` "
        "(or set data.source: local and data.local_path in params.yaml)."
    )


def _open(url: str, offset: int, timeout: float, context: ssl.SSLContext) -> http.client.HTTPResponse:
    """Send the request (a Range request from `offset` when > 0); classify what fails."""
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=timeout, context=context)
    except urllib.error.HTTPError:
        raise  # the caller decides: 416 is part of resuming, 5xx is transient
    except urllib.error.URLError as err:
        if isinstance(err.reason, ssl.SSLCertVerificationError):
            raise DownloadError(_tls_message(url, err.reason)) from None
        raise _Interrupted(f"cannot reach the server: {err.reason}") from None
    except (OSError, http.client.HTTPException) as err:  # timeout or drop before the headers
        raise _Interrupted(f"no answer: {err!r}") from None


def _fetch(
    url: str, part: Path, expected_size: int | None, timeout: float, context: ssl.SSLContext, progress: bool
) -> int | None:
    """One attempt: extend `part` to the whole file; return the size the server announced.

    Raises _Interrupted when the transfer stops early (the bytes received are kept), and
    DownloadError when retrying cannot help.
    """
    offset = _size(part)
    if expected_size is not None and offset > expected_size:
        part.unlink()  # longer than the file we want: not a prefix of it
        offset = 0
    if expected_size is not None and offset == expected_size:
        return expected_size  # complete from an earlier run that stopped before verifying
    try:
        response = _open(url, offset, timeout, context)
    except urllib.error.HTTPError as err:
        err.close()  # its headers are read; the body is the server's error page
        if err.code == 416 and offset:
            # Our .part reaches past the end of the server's file, or exactly to it.
            _, total = _content_range(err.headers.get("Content-Range"))
            if total == offset:
                return total
            part.unlink()
            return _fetch(url, part, expected_size, timeout, context, progress)
        if err.code >= 500 or err.code in _TRANSIENT_STATUS:
            raise _Interrupted(f"HTTP {err.code} {err.reason}") from None
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    if response.status == 206:
        start, total = _content_range(response.headers.get("Content-Range"))
        mode = "ab"
        if start != offset:  # not the range we asked for: appending it would corrupt the file
            response.close()
            if not offset:
                raise DownloadError(f"{url}: the server sent part of the file to a request for all of it")
            part.unlink()
            return _fetch(url, part, expected_size, timeout, context, progress)
    else:
        # 200: the whole file, also when a server that ignores Range answers a resume.
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.isdigit() else None
        offset, mode = 0, "wb"
    with response:
        if expected_size is not None and total is not None and total != expected_size:
            raise DownloadError(
                f"{url}: the server's file is {total:,} bytes, expected {expected_size:,}: "
                "a different file from the one expected (check the URL and the expected size)"
            )
        received = offset
        with (
            part.open(mode) as out,
            tqdm(
                total=total,
                initial=offset,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=part.name.removesuffix(".part"),
                disable=not progress,
                leave=False,
            ) as bar,
        ):
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
            except (OSError, http.client.HTTPException) as err:
                raise _Interrupted(f"transfer broke after {received:,} bytes: {err!r}") from None
    # http.client returns a short body without complaint when the connection closes early.
    if total is not None and received < total:
        raise _Interrupted(f"connection closed after {received:,} of {total:,} bytes")
    return total


def _verify(url: str, part: Path, size: int | None, sha256: str | None) -> None:
    """Check the finished .part; a bad one is deleted so that the next run starts over."""
    actual = part.stat().st_size
    if size is not None and actual != size:
        part.unlink()
        raise DownloadError(
            f"{url}: downloaded {actual:,} bytes, expected {size:,}; deleted it, the next run starts over"
        )
    if sha256 is not None:
        digest = _sha256(part)
        if digest != sha256.lower():
            part.unlink()
            raise DownloadError(
                f"{url}: SHA-256 mismatch: expected {sha256.lower()}, got {digest}; "
                "deleted the download, the next run starts over"
            )


def _is_complete(dest: Path, expected_size: int | None, sha256: str | None) -> bool:
    """Whether `dest` already holds the wanted file (a file at dest was verified when it
    was written; this re-checks it against the expectations of this call)."""
    if expected_size is not None and dest.stat().st_size != expected_size:
        return False
    return sha256 is None or _sha256(dest) == sha256.lower()


def download(
    url: str,
    dest: Path,
    *,
    expected_size: int | None,
    sha256: str | None,
    retry: Retries = Retries(),
    progress: bool = True,
) -> Path:
    """Download `url` to `dest`, resuming a `.part` left by an earlier run; return `dest`.

    The size is checked against `expected_size` (else the server's Content-Length) and the
    content against `sha256` (hex) when given, before `dest` appears. A `dest` that already
    meets them is not downloaded again. Transient failures (connection errors, timeouts,
    HTTP 5xx/408/429) are retried as `retry` says; its `retries` counts failed attempts in a
    row, so a flaky link that keeps making progress still finishes.
    Raises DownloadError on a size or checksum mismatch, an HTTP error, a TLS certificate
    that does not verify, or when the retries run out.
    """
    dest = Path(dest)
    if dest.is_file() and _is_complete(dest, expected_size, sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = _part_path(dest)
    context = ssl.create_default_context()
    failures = 0
    while True:
        before = _size(part)
        try:
            total = _fetch(url, part, expected_size, retry.timeout, context, progress)
            break
        except _Interrupted as err:
            failures = 1 if _size(part) > before else failures + 1
            if failures > retry.retries:
                raise DownloadError(f"{url}: giving up after {failures} failed attempts in a row: {err}") from None
            delay = retry.backoff * 2 ** (failures - 1)
            print(f"download: {url}: {err}; retrying in {delay:.1f} s", file=sys.stderr)
            time.sleep(delay)
    _verify(url, part, expected_size if expected_size is not None else total, sha256)
    os.replace(part, dest)
    return dest
