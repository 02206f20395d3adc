"""Reading bad input, atomic writes and append-only streams."""

from __future__ import annotations

import gzip
import json

import pytest

from curate.errors import InputError
from curate.records import validate_record
from curate.records.jsonl import AppendLog, Quarantine, iter_json_rows, iter_valid, write_jsonl


def test_jsonl_json_array_and_gzip_give_rows_with_line_numbers(tmp_path):
    rows = [{"a": 1}, {"a": 2}]
    plain = tmp_path / "rows.jsonl"
    plain.write_text('{"a": 1}\n\n{"a": 2}\n')
    assert list(iter_json_rows(plain)) == [(1, rows[0]), (3, rows[1])]
    array = tmp_path / "rows.json"
    array.write_text(json.dumps(rows, indent=1))
    assert [v for _, v in iter_json_rows(array)] == rows
    assert [n for n, _ in iter_json_rows(array)] == [2, 5]
    packed = tmp_path / "rows.jsonl.gz"
    packed.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert [v for _, v in iter_json_rows(packed)] == rows


@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (b'{"a": 1}\n{"a": \n', 2, "malformed JSON"),
        (b'{"a": 1}\n{"a": "\xff"}\n', 2, "not valid UTF-8 (byte 0xff"),
        (b"", None, "is empty"),
        (b"\n  \n", None, "is empty"),
        (b"[]", 1, "empty JSON array"),
        (b'[{"a": 1},\n {"a": 2}\n {"a": 3}]', 3, "expected ',' or ']'"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, content, line, words):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(content)
    with pytest.raises(InputError) as err:
        list(iter_json_rows(path))
    assert err.value.line == line
    assert words in str(err.value)
    assert str(err.value).startswith(f"{path}:{line}:" if line else f"{path}:")


def test_quarantine_sets_bad_rows_aside_and_goes_on(tmp_path):
    good = {"id": "x", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "meta": {}}
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        (json.dumps(good) + "\n").encode()
        + b"{broken\n"
        + b'{"id": "y", "messages": [], "meta": {}}\n'
        + b'"\xfe"\n'
        + (json.dumps(good) + "\n").encode()
    )
    side = tmp_path / "side.jsonl"
    with Quarantine(side) as quarantine:
        kept = [n for n, _ in iter_valid(path, lambda r: validate_record(r, check_id=False), quarantine)]
    assert kept == [1, 5]
    bad = [json.loads(line) for line in side.read_text().splitlines()]
    assert [(b["line"], b["field"]) for b in bad] == [(2, None), (3, "messages"), (4, None)]
    assert quarantine.count == 3


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    out = tmp_path / "out.jsonl"
    write_jsonl(out, [{"n": 1}])

    def explode():
        yield {"n": 2}
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_jsonl(out, explode())
    assert out.read_text() == '{"n":1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]


def test_append_log_cuts_a_torn_last_line(tmp_path):
    path = tmp_path / "stream.jsonl"
    path.write_text('{"n":1}\n{"n":2}\n{"n":')
    with AppendLog(path) as log:
        assert log.existing() == [{"n": 1}, {"n": 2}]
        log.write_many([{"n": 3}])
    assert [json.loads(x) for x in path.read_text().splitlines()] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_atomic_output_gets_the_mode_a_plain_open_gives(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    out = tmp_path / "out.jsonl"
    write_jsonl(out, [{"n": 1}])
    assert out.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
