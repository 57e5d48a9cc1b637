"""The local ODF's S3 server process: its port cannot be taken by another process while it starts, and a
server that dies before serving is reported as such.

CI once saw `IAM CreateUser: HTTP 400: only CONNECT and absolute http:// URIs`: the S3 server had been
handed a port number that was free a moment before, another local cluster's network proxy bound the
same port first, moto could not bind, and the bootstrap talked to the proxy. The squatter below binds
the S3 server's port at the moment its process is started, as that proxy did.
"""
from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import threading
import time

import pytest

from localcluster import odf


class _Refuser(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - http.server's naming
        body = b"only CONNECT and absolute http:// URIs\n"
        self.send_response(400)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    srv = odf.S3Server("rgw", tmp_path)
    yield srv
    srv.stop_sync()


def test_a_process_binding_ports_meanwhile_cannot_take_the_s3_servers_port(server, monkeypatch):
    squatters: list[http.server.HTTPServer] = []
    refused: list[OSError] = []
    real_popen = subprocess.Popen

    def popen_after_a_squatter(*args, **kwargs):
        try:
            sq = http.server.HTTPServer((server.host, server.port), _Refuser)
        except OSError as e:
            refused.append(e)
        else:
            squatters.append(sq)
            threading.Thread(target=sq.serve_forever, daemon=True).start()
        return real_popen(*args, **kwargs)

    monkeypatch.setattr(odf.subprocess, "Popen", popen_after_a_squatter)
    try:
        server.start_sync(timeout=30)
        assert not squatters, f"another process could bind port {server.port} while the S3 server started"
        assert refused, "the squatter never ran"
        server.create_bucket("bucket-one")
        assert "bucket-one" in server.buckets()
    finally:
        for sq in squatters:
            sq.shutdown()
            sq.server_close()


def test_an_s3_server_that_dies_before_serving_is_reported_with_its_exit_status(server, monkeypatch):
    # A dying process closes its socket (the client sees a reset) a moment before it can be reaped; CI
    # once reported "did not answer" for that reason. Here the moment is made half a second long.
    def dying(host, fd):
        return [sys.executable, "-c", f"import os, time; os.close({fd}); time.sleep(0.5); raise SystemExit(3)"]

    monkeypatch.setattr(odf, "moto_command", dying)
    started = time.monotonic()
    with pytest.raises(RuntimeError) as e:
        server.start_sync(timeout=30)
    assert time.monotonic() - started < 20, "a dead server was waited on until the deadline"
    assert "exited with 3" in str(e.value) and "moto.log" in str(e.value)
    with socket.socket() as s:   # nothing is left listening on its port
        assert s.connect_ex(("127.0.0.1", server.port)) != 0
