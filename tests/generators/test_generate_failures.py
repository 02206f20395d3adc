"""`curate generate` when the teacher cannot help: a dead port, a server that refuses the key, a server
that fails every request (and echoes the Authorization header into its error body, as some proxies do);
plus --dry-run against a server that counts requests. Real servers on 127.0.0.1, the real CLI in a
subprocess; every file the run wrote is searched for the key."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import free_port

KEY = "sk-test-0123456789abcdefghijklmnop"


class EchoServer:
    """Answers every request with ``status`` and an error body quoting the request's Authorization header."""

    def __init__(self, status: int):
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                server.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                body = json.dumps({"error": {"message": f"denied for Authorization: {self.headers.get('Authorization')}"
                                                        f" (key {self.headers.get('Authorization', '')[7:]})",
                                             "type": "x", "code": None}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def echo_server(request):
    server = EchoServer(request.param)
    yield server
    server.close()


def curate(*args: str, env_key: str | None = None) -> tuple[subprocess.CompletedProcess, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")}
    if env_key:
        env["OPENAI_API_KEY"] = env_key
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "curate", *args], capture_output=True, text=True, timeout=120,
                            env=env)
    return result, time.monotonic() - start


def written_text(folder: Path) -> str:
    return "".join(p.read_text(encoding="utf-8", errors="replace") for p in folder.rglob("*") if p.is_file())


def test_dead_port_without_engine_flag_is_a_one_line_connection_error(tmp_path, seeds_file):
    result, took = curate("generate", "--base-url", "http://127.0.0.1:9/v1", "--seeds", str(seeds_file),
                          "--out", str(tmp_path / "g.jsonl"))
    assert result.returncode == 2 and took < 20
    assert result.stderr.splitlines() == [
        "error: --base-url http://127.0.0.1:9/v1: cannot connect ([Errno 111] Connection refused); "
        "is the server running and the URL right?"]


def test_dead_port_with_a_teacher_stops_after_the_first_batch(tmp_path, seeds_file):
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "run" / "g.jsonl"
    result, took = curate("generate", "--base-url", url, "--teacher", "m", "--seeds", str(seeds_file), "--out", str(out),
                          "-n", "100", "-q")
    assert result.returncode == 2 and took < 20, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "cannot connect" in result.stderr
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "cannot connect" in manifest["sessions"][-1]["error"]
    assert not out.read_text()  # nothing generated, nothing pretended


@pytest.mark.parametrize("echo_server", [401, 403], indirect=True)
def test_refused_key_stops_within_a_handful_of_requests_and_never_writes_the_key(echo_server, tmp_path, seeds_file):
    out = tmp_path / "run" / "g.jsonl"
    result, took = curate("generate", "--base-url", echo_server.base_url, "--teacher", "m", "--seeds", str(seeds_file),
                          "--out", str(out), "-n", "100", "-q", env_key=KEY)
    assert result.returncode == 2 and took < 20, result.stderr
    assert len(result.stderr.splitlines()) == 1 and "refused the API key" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr and KEY not in result.stderr + result.stdout
    assert 1 <= len(echo_server.requests) <= 5  # one batch at most, not 100 doomed requests
    assert KEY not in written_text(out.parent) and KEY[3:20] not in written_text(out.parent)


@pytest.mark.parametrize("echo_server", [500], indirect=True)
def test_every_request_failing_exits_2_with_advice_and_redacts_echoed_keys(echo_server, tmp_path, seeds_file):
    out = tmp_path / "run" / "g.jsonl"
    result, took = curate("generate", "--base-url", echo_server.base_url, "--teacher", "m", "--seeds", str(seeds_file),
                          "--out", str(out), "-n", "100", "--batch-size", "2", "--max-retries", "0", "-q",
                          "--api-key", KEY)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"error: every request of 3 batches in a row failed: the server kept failing (HTTP 5xx): see its log and "
        f"errors.jsonl (0 rows in {out}; see {out.parent / 'errors.jsonl'})"]
    assert len(echo_server.requests) == 6
    errors = [json.loads(line) for line in (out.parent / "errors.jsonl").read_text().splitlines()]
    assert len(errors) == 6 and {e["kind"] for e in errors} == {"server"}
    assert "denied for Authorization" in errors[0]["error"]  # the body is kept, the key is not
    everything = written_text(out.parent) + result.stdout + result.stderr
    assert KEY not in everything and KEY[3:20] not in everything
    manifest = json.loads((out.parent / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["totals"]["failed_requests"] == 6
    assert manifest["config"]["engine_options"]["api_key"] != KEY


@pytest.mark.parametrize("echo_server", [200], indirect=True)
def test_dry_run_projects_tokens_and_cost_and_sends_nothing(echo_server, tmp_path, seeds_file):
    result, _ = curate("generate", "--dry-run", "--engine", "openai", "--base-url", echo_server.base_url,
                       "--price-in", "1", "--price-out", "2", "-n", "1000", "--seeds", str(seeds_file),
                       "--out", str(tmp_path / "g.jsonl"))
    assert result.returncode == 0, result.stderr
    assert echo_server.requests == []
    lines = result.stdout.splitlines()
    assert lines[0].startswith("dry run: nothing sent. --engine openai") and "4 characters per token" in lines[0]
    assert any(line.startswith("projected for 1,000 instructions: ") for line in lines)
    tokens = next(line for line in lines if line.startswith("projected tokens: prompts "))
    cost = next(line for line in lines if line.startswith("projected cost: $"))
    prompt_tokens = int(tokens.split("prompts ")[1].split(";")[0].replace(",", ""))
    assert prompt_tokens > 100_000 and f"${prompt_tokens / 1e6:,.4f} for prompts" in cost
    assert not (tmp_path / "g.jsonl").exists()
