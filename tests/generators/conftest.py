"""Fixtures for the generators tests: our own small seed tasks, a scripted OpenAI-compatible
HTTP server (real sockets, real ``openai`` client; it answers 429/5xx/slow/context-length on
cue), and a real llama-cpp-python server on the bundled GGUF for the slow tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SEED_TASKS = [
    ("Suggest a healthy breakfast that takes less than ten minutes to make.", "", "Greek yoghurt with oats, berries and a spoon of honey.", False),
    ("Decide whether the movie review is positive or negative.", "The acting was wooden and the plot made no sense.", "Negative", True),
    ("Rewrite the sentence in the passive voice.", "The committee approved the new budget.", "The new budget was approved by the committee.", False),
    ("Explain why the sky looks blue during the day.", "", "Air molecules scatter blue light from the sun more than red light, so blue reaches our eyes from every direction.", False),
    ("Tell me whether the number is prime or composite.", "91", "Composite", True),
    ("Give three tips for remembering new vocabulary in a foreign language.", "", "Use spaced repetition, say words aloud in sentences, and group words by theme.", False),
    ("Summarize the paragraph in one sentence.", "Bees visit flowers to collect nectar. While doing so they carry pollen from plant to plant, which lets the plants make seeds.", "Bees pollinate plants while collecting nectar.", False),
    ("Classify the animal as a mammal, bird, reptile or fish.", "Penguin", "Bird", True),
    ("Write a polite reply declining an invitation to a birthday party.", "", "Thank you so much for inviting me! Sadly I am away that weekend, but I hope you have a wonderful birthday.", False),
    ("Convert the temperature from Fahrenheit to Celsius.", "212 F", "100 C", False),
    ("List the steps to make a cup of green tea.", "", "Heat water to about 80 C, put the tea in a cup, pour the water, wait two minutes, remove the leaves.", False),
    ("Find the main verb in the sentence.", "The children quickly ran across the wet field.", "ran", False),
]


def write_seeds(path: Path, tasks=SEED_TASKS) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for i, (instruction, inp, out, clf) in enumerate(tasks):
            row = {"id": f"test_seed_{i}", "name": f"task_{i}", "instruction": instruction,
                   "instances": [{"input": inp, "output": out}], "is_classification": clf}
            handle.write(json.dumps(row) + "\n")
    return path


@pytest.fixture
def make_seeds():
    """Write the first ``count`` test seed tasks to a path."""
    return lambda path, count=None: write_seeds(Path(path), SEED_TASKS[:count])


@pytest.fixture
def seeds_file(tmp_path: Path) -> Path:
    return write_seeds(tmp_path / "seeds" / "seed_tasks.jsonl")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScriptedServer:
    """An OpenAI-compatible HTTP server that plays queued actions, then echoes successes.

    An action is a dict: ``status`` (default 200), ``error`` (message for non-200),
    ``headers``, ``delay`` (seconds before answering), ``text``, ``finish_reason``.
    """

    def __init__(self):
        self.actions: deque[dict] = deque()
        self.bodies: list[dict] = []
        self.times: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.default_text = "ok"
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                self._send(200, {"object": "list", "data": [{"id": "scripted-model", "object": "model"}]})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server._lock:
                    server.bodies.append(body)
                    server.times.append(time.monotonic())
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                    action = server.actions.popleft() if server.actions else {}
                try:
                    time.sleep(action.get("delay", 0))
                    status = action.get("status", 200)
                    if status != 200:
                        error = {"error": {"message": action.get("error", "scripted failure"), "type": "x", "code": None}}
                        self._send(status, error, action.get("headers", {}))
                        return
                    text = action.get("text", server.default_text)
                    text = text(body) if callable(text) else text
                    chat = self.path.endswith("/chat/completions")
                    choice = {"index": 0, "finish_reason": action.get("finish_reason", "stop")}
                    choice.update({"message": {"role": "assistant", "content": text}} if chat else {"text": text})
                    self._send(200, {"id": "x", "object": "chat.completion" if chat else "text_completion",
                                     "created": 0, "model": body["model"], "choices": [choice],
                                     "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _send(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted_server():
    server = ScriptedServer()
    yield server
    server.close()


class LlamaServer:
    """llama-cpp-python's OpenAI-compatible server on the bundled GGUF, on a free port; restartable."""

    def __init__(self, log_dir: Path):
        from curate.records.model import bundled_gguf

        self.model = str(bundled_gguf())
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = log_dir / "llama_server.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120.0) -> None:
        threads = str(max((os.cpu_count() or 2) // 2, 1))
        command = [sys.executable, "-m", "llama_cpp.server", "--model", self.model, "--host", "127.0.0.1",
                   "--port", str(self.port), "--n_ctx", "4096", "--n_threads", threads, "--n_threads_batch", threads]
        with self.log.open("a") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"llama.cpp server exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("llama.cpp server did not come up")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill()


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    pytest.importorskip("llama_cpp.server.app", reason="llama-cpp-python[server] is not installed")
    server = LlamaServer(tmp_path_factory.mktemp("llama"))
    server.start()
    yield server
    server.stop()
