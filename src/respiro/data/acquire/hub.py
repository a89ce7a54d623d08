"""Files named the torchvision way (`<name>-<SHA-256 prefix>.<ext>`), found and verified.

The lookup order is torch.hub's with a user's path in front: a path the user gives, then
torch.hub's cache (`$TORCH_HOME/hub/checkpoints/<name>`), then a resumable download (`http`)
into that cache. Wherever a file comes from, its SHA-256 must start with the hex prefix in
its name, the check torchvision's `check_hash` makes; the full SHA-256 comes back to be
recorded.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from respiro.core.errors import DownloadError, PretrainedWeightsError
from respiro.data.acquire.http import Retries, download

# torchvision's files carry 8 hex digits; fewer would verify next to nothing.
_HASH_PREFIX = re.compile(r"-([0-9a-f]{8,})\.")


def torch_home() -> Path:
    """$TORCH_HOME, else $XDG_CACHE_HOME/torch, else ~/.cache/torch (torch.hub's rule)."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache") / "torch"
    return Path(os.environ.get("TORCH_HOME") or default).expanduser()


def hub_checkpoint(name: str) -> Path:
    """Where torch.hub (and so torchvision) keeps, and looks for, a downloaded file."""
    return torch_home() / "hub" / "checkpoints" / name


def hash_prefix(name: str) -> str | None:
    """The SHA-256 prefix a torchvision-style file name carries, or None."""
    match = _HASH_PREFIX.search(name)
    return match[1] if match else None


def sha256_of(path: Path) -> str:
    with Path(path).open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(path: Path, prefix: str) -> str:
    """The file's full SHA-256, after checking that it starts with `prefix`."""
    digest = sha256_of(path)
    if not digest.startswith(prefix):
        raise PretrainedWeightsError(
            f"{path}: SHA-256 {digest[:16]}... does not start with {prefix}, the prefix published "
            "for it: a damaged or different file; replace it with the published file (or delete it "
            "to have it downloaded again)"
        )
    return digest


@dataclass(frozen=True)
class HubFile:
    """A verified file and where it was found: 'pretrained.path', 'TORCH_HOME' or 'download'."""

    name: str  # e.g. resnet34-b627a593.pth: the published name, or a given file's own hash-prefixed name
    path: Path
    sha256: str
    source: str


def find_hub_file(
    name: str,
    what: str,
    path: str | None,
    url: str,
    *,
    retry: Retries = Retries(retries=3),
    progress: bool = True,
) -> HubFile:
    """The published file `name` (described by `what` in messages), verified.

    1. `path` (pretrained.path): checked against the prefix in its own name, or against
       `name`'s when its name carries none (a renamed copy of the published file);
    2. $TORCH_HOME/hub/checkpoints/<name>: read without any network;
    3. a download from `url` + <name> into that folder, resumable (an interrupted download
       leaves a .part the next run continues); a download that fails the check is deleted.
       `retry` is the downloader's: offline, the message comes after about
       backoff x (2**retries - 1) seconds.

    Raises PretrainedWeightsError with one line: a file that fails its check (named), or,
    when no source has the file, which file to put where.
    """
    published = hash_prefix(name)
    if published is None:
        raise ValueError(f"{name} carries no SHA-256 prefix")
    if path is not None:
        given = Path(path).expanduser()
        if not given.is_file():
            raise PretrainedWeightsError(
                f"pretrained.path={path} is not a file; point it at {name} ({what}) or set it to null"
            )
        own = hash_prefix(given.name)
        # A file named with its own prefix is known by its own name (it may be other weights
        # than the published ones); a renamed copy must be the published file.
        return HubFile(given.name if own else name, given, verify(given, own or published), "pretrained.path")
    cached = hub_checkpoint(name)
    if cached.is_file():
        return HubFile(name, cached, verify(cached, published), "TORCH_HOME")
    source = url.rstrip("/") + "/" + name
    try:
        download(source, cached, expected_size=None, sha256=None, retry=retry, progress=progress)
    except (DownloadError, OSError) as err:
        reason = " ".join(str(err).split())
        raise PretrainedWeightsError(
            f"{name} ({what}) is needed and none is at hand: put it at {cached} "
            f"(or set pretrained.path to it) and rerun; downloading {source} failed: {reason}"
        ) from None
    try:
        digest = verify(cached, published)
    except PretrainedWeightsError:
        cached.unlink()  # our own download: never leave a file that fails its check in the cache
        raise
    return HubFile(name, cached, digest, "download")


def find_local_file(name: str, what: str, path: str | None, sha256: str | None) -> HubFile:
    """A weights file published without a hash in its name (`name`, e.g. a hub's
    model.safetensors), from `path` only, never downloaded: `path` is the file or a folder
    holding `name` (a hub snapshot). Checked against `sha256` (pretrained.sha256) when given;
    its SHA-256 comes back to be recorded either way.

    Raises PretrainedWeightsError with one line: no path (which file to put where), no file
    there, or a file that is not the pinned one.
    """
    if path is None:
        raise PretrainedWeightsError(
            f"{name} ({what}) is never downloaded at run time: download it once, put it in a folder "
            "and set pretrained.path to that folder or the file"
        )
    given = Path(path).expanduser()
    found = given / name if given.is_dir() else given
    if not found.is_file():
        raise PretrainedWeightsError(
            f"pretrained.path={path}: no {name} there ({what}); point it at the file or the folder holding it"
        )
    digest = sha256_of(found)
    if sha256 is not None and digest != sha256:
        raise PretrainedWeightsError(
            f"{found}: SHA-256 {digest[:16]}... is not pretrained.sha256 {sha256[:16]}...: a damaged or "
            "different file; replace it with the published one (or correct pretrained.sha256)"
        )
    return HubFile(name, found, digest, "pretrained.path")
