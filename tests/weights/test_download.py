"""Weights named by URL: the cache layout, downloads from file:// and a loopback HTTP server,
checksums (caller, file name, Detectron's `.md5sum`), and failures that leave nothing behind."""

import hashlib
import http.server
import os
import socket
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from detectron_files import py2_pickle_bytes  # noqa: E402

from pydetectron.weights import (  # noqa: E402
    WeightsDownloadError,
    WeightsNotFoundError,
    cache_dir,
    cache_path,
    load_weights,
    resolve_weights,
)

PAYLOAD = os.urandom(300_000)


class Server:
    """A loopback HTTP server: `files` by path; paths in `cut_short` send half their declared length."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut_short: set[str] = set()
        self.requests: list[str] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.path in outer.cut_short:
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_cache_location_keeps_the_url_path(monkeypatch, tmp_path):
    url = "https://dl.fbaipublicfiles.com/detectron/ImageNetPretrained/MSRA/R-50.pkl"
    monkeypatch.setenv("PYDETECTRON_CACHE", str(tmp_path / "cache"))
    assert cache_path(url) == tmp_path / "cache" / "detectron" / "ImageNetPretrained" / "MSRA" / "R-50.pkl"
    monkeypatch.delenv("PYDETECTRON_CACHE")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "pydetectron"
    with pytest.raises(WeightsDownloadError, match="cannot name a file"):
        cache_path("http://example.com/a/%2e%2e/../../etc/passwd", tmp_path)


def test_file_url_is_copied_into_the_cache_once(tmp_path):
    source = tmp_path / "zoo" / "R-50.pkl"
    source.parent.mkdir()
    source.write_bytes(PAYLOAD)
    url = source.as_uri()
    cache = tmp_path / "cache"
    local = Path(resolve_weights(url, cache_root=cache, progress=False))
    assert local == cache_path(url, cache) and local.read_bytes() == PAYLOAD
    source.write_bytes(b"changed")  # the cached copy is used from now on
    assert Path(resolve_weights(url, cache_root=cache)).read_bytes() == PAYLOAD
    assert leftovers(cache) == [local]


def test_http_download_with_detectron_md5sum(server, tmp_path):
    server.files["/detectron/R-50.pkl"] = PAYLOAD
    server.files["/detectron/R-50.pkl.md5sum"] = (hashlib.md5(PAYLOAD).hexdigest() + "  R-50.pkl\n").encode()
    cache = tmp_path / "cache"
    local = Path(resolve_weights(server.url("/detectron/R-50.pkl"), cache_root=cache, progress=False))
    assert local == cache / "detectron" / "R-50.pkl" and local.read_bytes() == PAYLOAD
    assert server.requests == ["/detectron/R-50.pkl.md5sum", "/detectron/R-50.pkl"]


@pytest.mark.parametrize("how", ["published md5", "caller sha256", "name prefix"])
def test_checksum_mismatch_saves_nothing(server, tmp_path, how):
    wrong = hashlib.md5(b"something else").hexdigest()
    name = "/w/model-deadbeef.pth" if how == "name prefix" else "/w/model.pkl"
    server.files[name] = PAYLOAD
    kwargs = {}
    if how == "published md5":
        server.files[name + ".md5sum"] = wrong.encode()
    if how == "caller sha256":
        kwargs["sha256"] = hashlib.sha256(b"other").hexdigest()
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError, match="checksum mismatch") as info:
        resolve_weights(server.url(name), cache_root=cache, progress=False, **kwargs)
    assert "\n" not in str(info.value) and server.url(name) in str(info.value)
    assert leftovers(cache) == []


def test_matching_checksums_from_the_caller_and_the_file_name(server, tmp_path):
    prefix = hashlib.sha256(PAYLOAD).hexdigest()[:10]
    server.files[f"/w/resnet-{prefix}.pth"] = PAYLOAD
    cache = tmp_path / "cache"
    resolve_weights(server.url(f"/w/resnet-{prefix}.pth"), cache_root=cache, progress=False)
    server.files["/w/other.pkl"] = PAYLOAD
    resolve_weights(server.url("/w/other.pkl"), md5=hashlib.md5(PAYLOAD).hexdigest(), cache_root=cache)
    assert sorted(p.name for p in leftovers(cache)) == sorted([f"resnet-{prefix}.pth", "other.pkl"])
    # a cached file that no longer matches the checksum it is asked for is reported, not used
    with pytest.raises(WeightsDownloadError, match="fails its checksum"):
        resolve_weights(server.url("/w/other.pkl"), md5="0" * 32, cache_root=cache)


def test_interrupted_download_leaves_no_partial_file(server, tmp_path):
    server.files["/w/big.pkl"] = PAYLOAD
    server.cut_short.add("/w/big.pkl")
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError, match=r"stopped after 150000 of 300000 bytes"):
        resolve_weights(server.url("/w/big.pkl"), cache_root=cache, progress=False)
    assert leftovers(cache) == []


def test_unreachable_server_names_the_url_and_where_to_put_the_file(tmp_path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/detectron/ImageNetPretrained/MSRA/R-50.pkl"
    cache = tmp_path / "cache"
    with pytest.raises(WeightsDownloadError) as info:
        resolve_weights(url, cache_root=cache, progress=False)
    message = str(info.value)
    assert "\n" not in message and url in message
    assert str(cache / "detectron" / "ImageNetPretrained" / "MSRA" / "R-50.pkl") in message
    assert leftovers(cache) == []


def test_missing_local_file_is_an_error(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="weights file not found"):
        resolve_weights(tmp_path / "nowhere.pkl")
    with pytest.raises(WeightsNotFoundError):
        load_weights(nn.Linear(2, 2), str(tmp_path / "nowhere.pth"))


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def detectron_weight_mapping(self):
        return {"fc.weight": "fc_w", "fc.bias": "fc_b"}, []


def test_load_weights_takes_a_url(server, tmp_path, monkeypatch):
    monkeypatch.setenv("PYDETECTRON_CACHE", str(tmp_path / "cache"))
    blobs = {"fc_w": np.arange(6, dtype=np.float32).reshape(2, 3), "fc_b": np.ones(2, np.float32)}
    server.files["/zoo/model_final.pkl"] = py2_pickle_bytes({"blobs": blobs, "cfg": "MODEL: {}"})
    model = Tiny()
    report = load_weights(model, server.url("/zoo/model_final.pkl"))
    assert report.source == str(tmp_path / "cache" / "zoo" / "model_final.pkl")
    assert torch.equal(model.fc.weight, torch.from_numpy(blobs["fc_w"]))
