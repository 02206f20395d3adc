"""What committing a filter-shaped output set costs, against four independent atomic writes.

    .venv/bin/python bench/bench_commit.py [--mb 450] [--folder /tmp/bench-commit]

Writes curated.jsonl + rejected.jsonl (about --mb MB together) + a report + a config once as an
output set (curate.runs.commit: staged files, fsync, sha256 read-back, journal, renames) and once
with four atomic_writer calls, then times verify_set both ways (inode match, and sha256 after the
file's mtime changed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

from curate.records.jsonl import atomic_writer
from curate.runs.commit import output_set, verify_set

ROW = b'{"id":"x","messages":[{"role":"user","content":"' + b"a" * 400 + b'"}]}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=450)
    parser.add_argument("--folder", default="/tmp/bench-commit")
    args = parser.parse_args()
    folder = Path(args.folder)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    block = ROW * 2000
    blocks = max(1, int(args.mb * 1e6 / len(block) / 2))
    members = [folder / n for n in ("curated.jsonl", "rejected.jsonl", "filter_report.json", "filter_config.yaml")]

    def fill(handle, member: Path) -> None:
        for _ in range(blocks if member.suffix == ".jsonl" else 1):
            handle.write(block if member.suffix == ".jsonl" else b"{}\n")

    started = time.perf_counter()
    with output_set(members, "bench") as out:
        for member in members:
            with out.open(member, "wb") as handle:
                fill(handle, member)
    as_set = time.perf_counter() - started
    started = time.perf_counter()
    for member in members:
        with atomic_writer(member.with_name("plain." + member.name), "wb") as handle:
            fill(handle, member)
    plain = time.perf_counter() - started
    size = sum(m.stat().st_size for m in members) / 1e6
    started = time.perf_counter()
    state = verify_set(members).state
    by_inode = time.perf_counter() - started
    os.utime(members[0])
    started = time.perf_counter()
    verify_set(members)
    by_hash = time.perf_counter() - started
    print(f"{size:.0f} MB set: output_set {as_set:.2f} s, four atomic writes {plain:.2f} s; "
          f"verify by inode {by_inode * 1000:.1f} ms ({state}), by sha256 of the largest member {by_hash:.2f} s; "
          f"load {os.getloadavg()[0]:.1f}")
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
