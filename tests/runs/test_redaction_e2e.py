"""Secrets never reach disk: `curate generate` against a real server on 127.0.0.1 that echoes the
Authorization header (and the whole request) back in its error bodies, as some proxies do; then
every file the run wrote is grepped for the keys.

The keys here have no secret *shape* (no ``sk-``), so only the literal redaction of known keys
(``OPENAI_API_KEY`` from the environment, ``--api-key`` registered at start) can catch them;
tests/generators/test_generate_failures.py covers ``sk-`` keys, 401/403 and the exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ENV_KEY = "plain-env-secret-0099-qq"  # no secret shape: only the env lookup can catch it
CLI_KEY = "cli-only-secret-0042-zz"  # no secret shape: only registration can catch it
HF_KEY = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01"


class EchoServer:
    """Answers every POST with ``status`` and a body that repeats the request's headers and JSON."""

    def __init__(self, status: int = 500):
        self.requests = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):  # /v1/models
                self._send(200, {"object": "list", "data": [{"id": "echo-model", "object": "model"}]})

            def do_POST(self):
                server.requests += 1
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                echoed = f"upstream rejected request with headers {dict(self.headers)} and body {body}"
                self._send(status, {"error": {"message": echoed, "type": "proxy_error",
                                              "code": self.headers.get("Authorization")}})

            def _send(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("X-Echo-Authorization", self.headers.get("Authorization", ""))
                self.end_headers()
                self.wfile.write(data)

        server = self
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def echo_server():
    server = EchoServer(status=500)
    yield server
    server.close()


def _every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


@pytest.mark.parametrize("key_from", ["env", "cli"])
def test_generate_writes_no_secret_when_the_server_echoes_it(tmp_path: Path, echo_server: EchoServer,
                                                            key_from: str) -> None:
    out = tmp_path / "gen" / "generated.jsonl"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_TOKEN": HF_KEY}
    args = [sys.executable, "-m", "curate", "generate", "--base-url", echo_server.base_url, "--teacher", "echo-model",
            "-n", "3", "--batch-size", "2", "--max-retries", "1", "--concurrency", "2", "--out", str(out)]
    if key_from == "env":
        env["OPENAI_API_KEY"] = ENV_KEY
        key = ENV_KEY
    else:
        env.pop("OPENAI_API_KEY", None)
        args += ["--api-key", CLI_KEY]
        key = CLI_KEY
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
    assert echo_server.requests >= 1, done.stderr  # the key did go over the wire, and came back
    assert done.returncode != 0  # every request failed: no false success
    written = _every_file(tmp_path)
    assert written, "the run wrote nothing to check"
    for path in written:
        data = path.read_bytes()
        for secret in (key, HF_KEY):
            assert secret.encode() not in data, f"{secret} reached {path}"
        assert b"Bearer " + key.encode() not in data
    for stream in (done.stdout, done.stderr):
        assert key not in stream and HF_KEY not in stream
    errors = out.with_name("errors.jsonl")
    assert "HTTP 500" in errors.read_text()  # the error itself is kept, minus the key
