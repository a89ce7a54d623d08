"""Download, extraction and the local/icbhi sources, against a server on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import io
import shutil
import ssl
import stat
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from respiro.core.config import Params, load_params, parse_params
from respiro.core.errors import ArchiveError, DownloadError
from respiro.data.acquire.archive import extract_zip
from respiro.data.acquire.http import Retries, download
from respiro.data.databases import database_of
from respiro.data.icbhi import SPLIT_FILE, scan_folder
from respiro.data.raw_folder import IN_PLACE_FILE, raw_root, write_in_place

REPO = Path(__file__).resolve().parents[1]
TOP = "ICBHI_final_database"
# (stem, sample rate, WAV subtype, split side): real-looking names, rates and formats.
RECORDINGS = [
    ("101_1b1_Al_sc_Meditron", 4000, "PCM_16", "test"),
    ("102_1b1_Ar_sc_AKGC417L", 44100, "PCM_24", "train"),
    ("103_2b2_Ar_mc_LittC2SE", 44100, "PCM_16", "train"),
]


def icbhi_files() -> dict[str, bytes]:
    """A tiny ICBHI folder: {file name: content} with WAVs, annotations and the split file."""
    rng = np.random.default_rng(0)
    files: dict[str, bytes] = {}
    for stem, rate, subtype, _ in RECORDINGS:
        wav = io.BytesIO()
        sf.write(wav, 0.1 * rng.standard_normal(rate // 2), rate, format="WAV", subtype=subtype)
        files[f"{stem}.wav"] = wav.getvalue()
        files[f"{stem}.txt"] = b"0.000\t0.250\t0\t0\n0.250\t0.500\t1\t1\n"
    files[SPLIT_FILE] = "".join(f"{stem}\t{side}\n" for stem, _, _, side in RECORDINGS).encode()
    return files


def write_zip(
    path: Path, files: dict[str, bytes], top: str | None = TOP, compression: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in files.items():
            archive.writestr(f"{top}/{name}" if top else name, data)
    return path


def make_params(icbhi: dict[str, object] | None = None, **data: object) -> Params:
    """The repository's params with `data:` (and `icbhi:`) values replaced (validated like params.yaml)."""
    base = load_params(REPO / "params.yaml").as_dict()
    return parse_params({**base, "data": {**base["data"], **data}, "icbhi": {**base["icbhi"], **(icbhi or {})}})


def materialize_raw(params: Params, out_dir: Path, progress: bool) -> str:
    return database_of(params).acquire(params.data, params.synthetic, out_dir, progress)


# --- a local HTTP server ------------------------------------------------------------------


class FileServer:
    """Serves `files` on 127.0.0.1 with Range support, recording every request's Range header.

    Switches: `drop_once` sends half of the next body and closes the connection;
    `ignore_range` answers every request with the whole file (200); `always_500` fails all.
    """

    def __init__(self, files: dict[str, bytes], tls: ssl.SSLContext | None = None) -> None:
        self.files = files
        self.requests: list[tuple[str, str | None]] = []
        self.drop_once = self.ignore_range = self.always_500 = False
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # keep pytest's output clean
                pass

            def do_GET(self) -> None:
                wanted = self.headers.get("Range")
                server.requests.append((self.path, wanted))
                body = server.files.get(self.path.lstrip("/"))
                if server.always_500 or body is None:
                    self.send_error(500 if server.always_500 else 404)
                    return
                start = 0
                if wanted and not server.ignore_range:
                    start = int(wanted.removeprefix("bytes=").removesuffix("-"))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if server.drop_once:
                    # HTTP/1.0: returning closes the connection, short of Content-Length.
                    server.drop_once = False
                    self.wfile.write(body[start : start + (len(body) - start) // 2])
                    return
                self.wfile.write(body[start:])

        return Handler


@pytest.fixture(scope="module")
def archive_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return write_zip(tmp_path_factory.mktemp("zip") / "a.zip", icbhi_files()).read_bytes()


@pytest.fixture
def server(archive_bytes: bytes) -> Iterator[FileServer]:
    files = {"ICBHI_final_database.zip": archive_bytes, "split.txt": icbhi_files()[SPLIT_FILE]}
    srv = FileServer(files)
    yield srv
    srv.close()


def fetch(srv: FileServer, dest: Path, payload: bytes, **kwargs: object) -> Path:
    options = {
        "expected_size": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
        "retry": Retries(backoff=0.01),
        "progress": False,
    }
    return download(srv.url("ICBHI_final_database.zip"), dest, **{**options, **kwargs})


# --- download -----------------------------------------------------------------------------


def test_download_resumes_after_a_dropped_connection(server: FileServer, archive_bytes: bytes, tmp_path: Path) -> None:
    server.drop_once = True
    dest = fetch(server, tmp_path / "db.zip", archive_bytes)
    assert dest.read_bytes() == archive_bytes
    assert not (tmp_path / "db.zip.part").exists()
    assert [r for _, r in server.requests] == [None, f"bytes={len(archive_bytes) // 2}-"]
    # Complete and verified: not downloaded again.
    fetch(server, dest, archive_bytes)
    assert len(server.requests) == 2


def test_a_server_that_ignores_range_restarts_from_zero(
    server: FileServer, archive_bytes: bytes, tmp_path: Path
) -> None:
    server.drop_once = server.ignore_range = True
    dest = fetch(server, tmp_path / "db.zip", archive_bytes)
    assert dest.read_bytes() == archive_bytes
    assert server.requests[1][1] is not None  # it asked for a range and got the whole file


def test_a_part_longer_than_the_file_is_discarded(server: FileServer, archive_bytes: bytes, tmp_path: Path) -> None:
    (tmp_path / "db.zip.part").write_bytes(b"x" * (len(archive_bytes) + 10))
    # Without an expected size the server's 416 tells that the .part is no prefix of the file.
    dest = fetch(server, tmp_path / "db.zip", archive_bytes, expected_size=None)
    assert dest.read_bytes() == archive_bytes
    assert [r for _, r in server.requests] == [f"bytes={len(archive_bytes) + 10}-", None]


def test_a_wrong_size_is_refused(server: FileServer, archive_bytes: bytes, tmp_path: Path) -> None:
    with pytest.raises(
        DownloadError, match=rf"{server.url('')}.*{len(archive_bytes):,} bytes, expected {len(archive_bytes) + 1:,}"
    ):
        fetch(server, tmp_path / "db.zip", archive_bytes, expected_size=len(archive_bytes) + 1)
    assert not (tmp_path / "db.zip").exists()


def test_a_wrong_checksum_is_refused_and_the_download_deleted(
    server: FileServer, archive_bytes: bytes, tmp_path: Path
) -> None:
    actual = hashlib.sha256(archive_bytes).hexdigest()
    with pytest.raises(DownloadError, match=f"expected {'0' * 64}, got {actual}"):
        fetch(server, tmp_path / "db.zip", archive_bytes, sha256="0" * 64)
    assert list(tmp_path.iterdir()) == []  # no dest, no .part


def test_a_failing_server_is_retried_then_given_up(server: FileServer, archive_bytes: bytes, tmp_path: Path) -> None:
    server.always_500 = True
    with pytest.raises(DownloadError, match="giving up after 3 failed attempts.*HTTP 500"):
        fetch(server, tmp_path / "db.zip", archive_bytes, retry=Retries(retries=2, backoff=0.001))
    assert len(server.requests) == 3
    assert not (tmp_path / "db.zip").exists()


def test_a_missing_file_is_not_retried(server: FileServer, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="nope.zip: HTTP 404"):
        download(server.url("nope.zip"), tmp_path / "db.zip", expected_size=None, sha256=None, progress=False)
    assert len(server.requests) == 1


def test_an_interrupted_download_never_looks_complete(server: FileServer, archive_bytes: bytes, tmp_path: Path) -> None:
    server.drop_once = True
    with pytest.raises(DownloadError, match="connection closed after"):
        fetch(server, tmp_path / "db.zip", archive_bytes, retry=Retries(retries=0, backoff=0.01))
    assert not (tmp_path / "db.zip").exists()
    assert (tmp_path / "db.zip.part").stat().st_size == len(archive_bytes) // 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make a self-signed certificate")
def test_an_unverifiable_certificate_is_refused_with_a_way_round(archive_bytes: bytes, tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    srv = FileServer({"ICBHI_final_database.zip": archive_bytes}, tls=tls)
    try:
        with pytest.raises(DownloadError, match="certificate") as err:
            fetch(srv, tmp_path / "dl" / "db.zip", archive_bytes)
    finally:
        srv.close()
    assert "curl -O" in str(err.value) and "-S data.source=local -S data.local_path=" in str(err.value)
    assert not (tmp_path / "dl" / "db.zip").exists()


# --- extraction ---------------------------------------------------------------------------


def test_extract_flattens_the_top_folder(tmp_path: Path) -> None:
    files = icbhi_files()
    written = extract_zip(write_zip(tmp_path / "a.zip", files), tmp_path / "out")
    assert sorted(p.name for p in written) == sorted(files)
    assert all((tmp_path / "out" / name).read_bytes() == data for name, data in files.items())


@pytest.mark.parametrize("name", ["../evil.txt", f"{TOP}/../../evil.txt", "/evil.txt", "C:/evil.txt", "..\\evil.txt"])
def test_zip_slip_entries_are_refused_with_nothing_written(tmp_path: Path, name: str) -> None:
    zip_path = write_zip(tmp_path / "a.zip", icbhi_files())
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr(name, b"owned")
    with pytest.raises(ArchiveError, match=f"entry {name!r}".replace("\\", "\\\\")):
        extract_zip(zip_path, tmp_path / "deep" / "out")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a.zip"]


def test_symlink_entries_are_refused(tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "a.zip", icbhi_files())
    link = zipfile.ZipInfo(f"{TOP}/link.wav")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(zip_path, "a") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        extract_zip(zip_path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_corrupt_member_is_refused_before_writing(tmp_path: Path) -> None:
    zip_path = write_zip(tmp_path / "a.zip", icbhi_files(), compression=zipfile.ZIP_STORED)
    with zipfile.ZipFile(zip_path) as archive:
        info = archive.infolist()[-1]  # the last member, so earlier ones would extract fine
    data = bytearray(zip_path.read_bytes())
    at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.file_size // 2
    data[at] ^= 0xFF
    zip_path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match=f"{info.filename!r} fails its CRC check"):
        extract_zip(zip_path, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip"]


def test_a_file_that_is_not_a_zip_is_named(tmp_path: Path) -> None:
    (tmp_path / "a.zip").write_bytes(b"<html>certificate error</html>")
    with pytest.raises(ArchiveError, match=f"{tmp_path / 'a.zip'}: not a valid zip"):
        extract_zip(tmp_path / "a.zip", tmp_path / "out")


# --- sources ------------------------------------------------------------------------------


def test_local_folder_is_read_in_place_and_left_untouched(tmp_path: Path) -> None:
    folder = tmp_path / "mine"
    for name, data in icbhi_files().items():
        target = folder / name if name == SPLIT_FILE else folder / "audio" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    (folder / "notes.md").write_text("not data")
    before = {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_nlink) for p in folder.rglob("*") if p.is_file()}
    (tmp_path / "raw").mkdir()
    described = materialize_raw(make_params(source="local", local_path=str(folder)), tmp_path / "raw", progress=False)
    assert described == f"local({folder})"
    # data/raw only names the folder; no recording is copied or linked (DVC would hash it a
    # second time, and a link would put the user's file in DVC's read-only cache).
    assert [p.name for p in (tmp_path / "raw").iterdir()] == [IN_PLACE_FILE]
    assert raw_root(tmp_path / "raw") == folder
    after = {p: (p.read_bytes(), p.stat().st_mode, p.stat().st_nlink) for p in folder.rglob("*") if p.is_file()}
    assert after == before
    assert [r.wav.relative_to(folder).as_posix() for r in scan_folder(raw_root(tmp_path / "raw")).recordings] == [
        f"audio/{stem}.wav" for stem, *_ in RECORDINGS
    ]


def test_a_raw_folder_without_the_record_is_its_own_root(tmp_path: Path) -> None:
    assert raw_root(tmp_path) == tmp_path


def test_the_in_place_record_naming_a_lost_folder_or_damaged_is_named(tmp_path: Path) -> None:
    write_in_place(tmp_path, str(tmp_path / "moved"))
    with pytest.raises(FileNotFoundError, match=f"names {tmp_path / 'moved'}, which is not a folder any more"):
        raw_root(tmp_path)
    (tmp_path / IN_PLACE_FILE).write_text("{")
    with pytest.raises(ValueError, match=f"^{tmp_path / IN_PLACE_FILE}: not a folder record"):
        raw_root(tmp_path)


def test_local_zip_takes_the_split_file_lying_beside_it(tmp_path: Path) -> None:
    files = icbhi_files()
    split = files.pop(SPLIT_FILE)
    zip_path = write_zip(tmp_path / "ICBHI_final_database.zip", files)
    (tmp_path / SPLIT_FILE).write_bytes(split)
    (tmp_path / "raw").mkdir()
    materialize_raw(make_params(source="local", local_path=str(zip_path)), tmp_path / "raw", progress=False)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted([*files, SPLIT_FILE])


def test_local_folder_holding_the_zip(tmp_path: Path) -> None:
    (tmp_path / "local").mkdir()
    write_zip(tmp_path / "local" / "ICBHI_final_database.zip", icbhi_files())
    (tmp_path / "raw").mkdir()
    materialize_raw(make_params(source="local", local_path=str(tmp_path / "local")), tmp_path / "raw", progress=False)
    assert sorted(p.name for p in (tmp_path / "raw").iterdir()) == sorted(icbhi_files())


def test_the_default_local_folder_gives_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A fresh clone's data/local: its README and .gitignore only.
    (tmp_path / "data" / "local").mkdir(parents=True)
    for name in ("README.md", ".gitignore"):
        shutil.copy(REPO / "data" / "local" / name, tmp_path / "data" / "local" / name)
    (tmp_path / "raw").mkdir()
    monkeypatch.chdir(tmp_path)
    params = make_params(source="local")
    assert params.data.local_path == "data/local"
    with pytest.raises(FileNotFoundError, match=r"^data\.local_path=data/local holds no ICBHI recordings; put "):
        materialize_raw(params, tmp_path / "raw", progress=False)


def test_a_missing_local_path_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=f"data.local_path={tmp_path / 'nope'} does not exist"):
        materialize_raw(make_params(source="local", local_path=str(tmp_path / "nope")), tmp_path, progress=False)


def test_icbhi_source_downloads_extracts_and_fetches_the_split(server: FileServer, tmp_path: Path) -> None:
    files = icbhi_files()
    split = files.pop(SPLIT_FILE)
    archive = write_zip(tmp_path / "served.zip", files).read_bytes()
    server.files["ICBHI_final_database.zip"] = archive
    icbhi = {
        "url": server.url("ICBHI_final_database.zip"),
        "split_url": server.url("split.txt"),
        "size": len(archive),
        "sha256": hashlib.sha256(archive).hexdigest(),
        "download_dir": str(tmp_path / "downloads"),
    }
    params = make_params(source="download", icbhi=icbhi)
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        assert materialize_raw(params, tmp_path / run, progress=False) == f"download({icbhi['url']})"
        assert (tmp_path / run / SPLIT_FILE).read_bytes() == split
        assert sorted(p.name for p in (tmp_path / run).iterdir()) == sorted([*files, SPLIT_FILE])
    # The archive is kept in download_dir and not fetched again; the split file is.
    assert [path for path, _ in server.requests] == ["/ICBHI_final_database.zip", "/split.txt", "/split.txt"]
