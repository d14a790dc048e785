"""Tests of coverage.io.download against a real HTTP server on 127.0.0.1 (no mocks).

The server (below) serves ``shared/data`` read-only from a background thread on an ephemeral
port. It understands ``Range: bytes=N-`` and can be told to ignore Range, or to cut the connection
after a number of bytes the first time a file is asked for. It records every request.
"""

from __future__ import annotations

import hashlib
import http.server
import socket
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from coverage.errors import InputError
from coverage.io import download
from coverage.io.download import fetch

REL = "macau/worldpop/mac_pd_2020_1km.tif"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    """GET/HEAD of files under ``server.root`` with optional byte ranges (``bytes=N-`` only)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server naming)
        srv = self.server
        rng = self.headers.get("Range")
        with srv.lock:
            srv.log.append({"path": self.path, "range": rng})
        rel = unquote(urlsplit(self.path).path).lstrip("/")
        target = (srv.root / rel).resolve()
        if srv.root not in target.parents or not target.is_file():
            self._send(404, b"not found", {"Content-Type": "text/plain"})
            return
        data = target.read_bytes()
        size = len(data)
        status, body, headers = 200, data, {}
        if rng and not srv.ignore_range:
            start = int(rng.strip().removeprefix("bytes=").split("-")[0])
            if start >= size:
                self._send(416, b"", {"Content-Range": f"bytes */{size}"})
                return
            status, body = 206, data[start:]
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        headers["Content-Type"] = "application/octet-stream"
        headers["Accept-Ranges"] = "bytes" if not srv.ignore_range else "none"
        cut = None
        with srv.lock:
            if srv.cut_after is not None and rel not in srv.cut_done:
                srv.cut_done.add(rel)
                cut = srv.cut_after
        if cut is None:
            self._send(status, body, headers)
            return
        # Announce the full length, send only `cut` bytes, then drop the connection.
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[:cut])
        self.wfile.flush()
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class DataServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path, *, ignore_range: bool = False, cut_after: int | None = None):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.root = root.resolve()
        self.ignore_range = ignore_range
        self.cut_after = cut_after
        self.cut_done: set[str] = set()
        self.log: list[dict] = []
        self.lock = threading.Lock()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve(shared_data: Path):
    """Start a server (options as keywords); all are shut down at teardown."""
    servers: list[DataServer] = []

    def start(**kw) -> DataServer:
        srv = DataServer(shared_data, **kw)
        threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(srv)
        return srv

    yield start
    for srv in servers:
        srv.shutdown()
        srv.server_close()


@pytest.fixture(scope="module")
def expected_sha(shared_data: Path) -> str:
    for line in (shared_data / "SHA256SUMS.txt").read_text().splitlines():
        digest, _, name = line.strip().partition("  ")
        if name.removeprefix("./") == REL:
            return digest
    raise AssertionError("checksum of the Macau raster missing from SHA256SUMS.txt")


@pytest.fixture(autouse=True)
def _no_offline_env(monkeypatch):
    monkeypatch.delenv(download.OFFLINE_ENV, raising=False)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_full_download_matches_published_checksum(serve, tmp_path, expected_sha, shared_data):
    srv = serve()
    out = fetch(f"{srv.base}/{REL}", tmp_path / "cache", sha256=expected_sha, chunk=256, progress=True)
    assert out == tmp_path / "cache" / "mac_pd_2020_1km.tif"
    assert _sha(out) == expected_sha
    assert out.read_bytes() == (shared_data / REL).read_bytes()
    assert not (tmp_path / "cache" / "mac_pd_2020_1km.tif.part").exists()
    assert [r["range"] for r in srv.log] == [None]


def test_resume_from_seeded_part_file_sends_range(serve, tmp_path, expected_sha, shared_data):
    srv = serve()
    data = (shared_data / REL).read_bytes()
    half = len(data) // 2
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "mac_pd_2020_1km.tif.part").write_bytes(data[:half])
    out = fetch(f"{srv.base}/{REL}", cache, sha256=expected_sha, chunk=256, progress=False)
    assert [r["range"] for r in srv.log] == [f"bytes={half}-"]
    assert _sha(out) == expected_sha


def test_connection_cut_is_resumed_within_the_call(serve, tmp_path, expected_sha):
    srv = serve(cut_after=1000)
    out = fetch(f"{srv.base}/{REL}", tmp_path, sha256=expected_sha, chunk=256, progress=False)
    ranges = [r["range"] for r in srv.log]
    assert len(ranges) == 2
    assert ranges[0] is None
    assert ranges[1] == "bytes=1000-"  # the second request continued where the cut happened
    assert _sha(out) == expected_sha


def test_connection_cut_without_retries_keeps_part_then_resumes(serve, tmp_path, expected_sha):
    srv = serve(cut_after=1500)
    url = f"{srv.base}/{REL}"
    with pytest.raises(InputError) as err:
        fetch(url, tmp_path, sha256=expected_sha, chunk=256, progress=False, retries=0)
    assert ".part" in str(err.value) and "续传" in str(err.value)
    assert not (tmp_path / "mac_pd_2020_1km.tif").exists()  # atomic: no final file yet
    assert (tmp_path / "mac_pd_2020_1km.tif.part").stat().st_size == 1500
    out = fetch(url, tmp_path, sha256=expected_sha, chunk=256, progress=False, retries=0)
    assert srv.log[-1]["range"] == "bytes=1500-"
    assert _sha(out) == expected_sha


def test_cache_hit_makes_no_request(serve, tmp_path, expected_sha):
    srv = serve()
    url = f"{srv.base}/{REL}"
    fetch(url, tmp_path, sha256=expected_sha, progress=False)
    assert len(srv.log) == 1
    fetch(url, tmp_path, sha256=expected_sha, progress=False)
    fetch(url, tmp_path, progress=False)  # without a checksum the cached file is trusted too
    assert len(srv.log) == 1


def test_corrupted_cache_is_downloaded_again(serve, tmp_path, expected_sha):
    srv = serve()
    (tmp_path / "mac_pd_2020_1km.tif").write_bytes(b"not a tiff")
    out = fetch(f"{srv.base}/{REL}", tmp_path, sha256=expected_sha, progress=False)
    assert len(srv.log) == 1
    assert _sha(out) == expected_sha


def test_checksum_mismatch_raises_and_leaves_no_file(serve, tmp_path):
    srv = serve()
    wrong = "0" * 64
    with pytest.raises(InputError) as err:
        fetch(f"{srv.base}/{REL}", tmp_path, sha256=wrong, progress=False)
    msg = str(err.value)
    assert "校验值不符" in msg and "wrong checksum" in msg and wrong in msg
    assert list(tmp_path.iterdir()) == []


def test_server_ignoring_range_restarts_from_scratch(serve, tmp_path, expected_sha, shared_data):
    srv = serve(ignore_range=True)
    data = (shared_data / REL).read_bytes()
    # A wrong-content .part: if it were kept and appended to, the checksum would fail.
    (tmp_path / "mac_pd_2020_1km.tif.part").write_bytes(b"X" * 700)
    out = fetch(f"{srv.base}/{REL}", tmp_path, sha256=expected_sha, chunk=300, progress=False)
    assert [r["range"] for r in srv.log] == ["bytes=700-"]
    assert out.read_bytes() == data


def test_part_file_already_complete_gets_416_and_finishes(serve, tmp_path, expected_sha, shared_data):
    srv = serve()
    data = (shared_data / REL).read_bytes()
    (tmp_path / "mac_pd_2020_1km.tif.part").write_bytes(data)
    out = fetch(f"{srv.base}/{REL}", tmp_path, sha256=expected_sha, progress=False)
    assert [r["range"] for r in srv.log] == [f"bytes={len(data)}-"]
    assert _sha(out) == expected_sha


def test_404_is_bilingual_and_names_the_url(serve, tmp_path):
    srv = serve()
    url = f"{srv.base}/macau/worldpop/no_such_file.tif"
    with pytest.raises(InputError) as err:
        fetch(url, tmp_path, progress=False)
    msg = str(err.value)
    assert url in msg and "404" in msg
    assert "下载失败" in msg and "download failed" in msg
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_bilingual(tmp_path):
    with socket.socket() as s:  # a port that nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.tif"
    with pytest.raises(InputError) as err:
        fetch(url, tmp_path, progress=False, timeout=5)
    assert url in str(err.value) and "无法连接" in str(err.value)


def test_offline_mode_reads_folder_without_network(tmp_path, shared_data, expected_sha, monkeypatch):
    # Port 9 on 127.0.0.1 has no server: any network use would fail.
    url = "http://127.0.0.1:9/GIS/MAC/mac_pd_2020_1km.tif"
    folder = shared_data / "macau" / "worldpop"
    out = fetch(url, tmp_path / "cache", sha256=expected_sha, offline_dir=folder, progress=False)
    assert out == folder / "mac_pd_2020_1km.tif"
    assert not (tmp_path / "cache").exists()
    monkeypatch.setenv(download.OFFLINE_ENV, str(folder))
    assert fetch(url, tmp_path / "cache", progress=False) == folder / "mac_pd_2020_1km.tif"


def test_offline_mode_missing_file_names_the_path(tmp_path):
    url = "http://127.0.0.1:9/GIS/CHN/chn_ppp_2020.tif"
    with pytest.raises(InputError) as err:
        fetch(url, tmp_path / "cache", offline_dir=tmp_path, progress=False)
    msg = str(err.value)
    assert str(tmp_path / "chn_ppp_2020.tif") in msg
    assert "离线模式" in msg and "offline mode" in msg


def test_offline_mode_checksum_mismatch(tmp_path, shared_data):
    folder = shared_data / "macau" / "worldpop"
    with pytest.raises(InputError, match="wrong checksum"):
        fetch("http://x/mac_pd_2020_1km.tif", tmp_path, sha256="a" * 64, offline_dir=folder)
    assert (folder / "mac_pd_2020_1km.tif").exists()  # the user's offline file is never deleted


def test_bad_checksum_string_and_scheme(tmp_path):
    with pytest.raises(InputError, match="64 hex"):
        fetch("http://127.0.0.1:9/a.tif", tmp_path, sha256="abc")
    with pytest.raises(InputError, match="http/https"):
        fetch("ftp://127.0.0.1/a.tif", tmp_path)
    with pytest.raises(InputError, match="file name"):
        fetch("http://127.0.0.1:9/", tmp_path)


def test_url_helpers():
    assert download.geofabrik_url("gansu") == "https://download.geofabrik.de/asia/china/gansu-latest.osm.pbf"
    assert download.geofabrik_url("620802") == download.geofabrik_url("甘肃省")
    assert download.geofabrik_url("内蒙古自治区").endswith("/asia/china/inner-mongolia-latest.osm.pbf")
    assert download.geofabrik_url("广西壮族自治区").endswith("/asia/china/guangxi-latest.osm.pbf")
    assert download.geofabrik_url("820000", kind="shp").endswith("/asia/china/macau-latest-free.shp.zip")
    with pytest.raises(InputError):
        download.geofabrik_url("atlantis")
    # The density URL's file name is that of the real WorldPop file in shared/data.
    assert download.filename_from_url(download.worldpop_density_url("MAC")) == "mac_pd_2020_1km.tif"
    assert download.worldpop_population_url("chn").endswith("/2020/CHN/chn_ppp_2020.tif")
    assert download.worldpop_population_url("CHN", constrained=True, un_adjusted=True).endswith(
        "/CHN/chn_ppp_2020_UNadj_constrained.tif"
    )
    assert download.worldpop_agesex_url("CHN", "f", 60).endswith("/2020/CHN/chn_f_60_2020.tif")
    with pytest.raises(InputError):
        download.worldpop_agesex_url("CHN", "f", 3)
    with pytest.raises(InputError):
        download.worldpop_population_url("CHN", 2015, constrained=True)
