"""Commit a stage's output files as one set: a reader sees all old or all new, never a mix, and can tell which.

Two shapes of output, two mechanisms:

**Sibling files in a user-chosen folder** (``curated.jsonl`` + ``rejected.jsonl`` +
``filter_report.json`` + ``filter_config.yaml``): POSIX cannot rename several files in one
step, so the set is committed with a redo journal, ``.PRIMARY.commit.json`` beside the
first (primary) member:

1. every member is written to ``.NAME.RUNID.staged`` beside its target and fsynced;
2. the journal is written atomically with ``state: committing``, the run id, and each
   member's size, sha256, inode and mtime (plus the previous run's record, to name culprits).
   **This is the commit point**: before it the old set is untouched; after it the new set is
   decided, because every staged file is already durable;
3. each staged file is renamed over its target, then the folder is fsynced;
4. the journal is rewritten with ``state: committed``.

A crash (kill -9) anywhere leaves either the old set with its old journal, or a journal in
state ``committing`` whose staged files finish the job: :func:`read_set` (every curate
reader: report, export's card, chat/eval loading a run) and the next writer roll it forward
(renames of a decided commit are idempotent, so two finishing it at once is safe). :func:`verify_set` is the
read-only check: it says which run the files come from, or exactly which member is not from
the run the journal names ("incomplete set: rejected.jsonl is from run A, the set from run B").
A member matches its record by inode + size + mtime (free), else by sha256 (a copied folder).

Members known only once written (a training run's adapter and tokenizer files, compare's
plots): write them into a scratch folder and call :func:`commit_files`.

**Folder outputs** (export's dataset folder): write into a fresh
``.NAME.RUNID.staged/`` beside the target, fsync, then swap it in with one atomic
``renameat2(RENAME_EXCHANGE)`` (Linux); elsewhere two renames guarded by a journal that the
next run or reader rolls forward.

Crash tests inject the kill: with ``CURATE_TEST_KILL_AT_STEP=k`` the process SIGKILLs itself at
the k-th commit step it reaches (see :func:`crash_point`), so a test walks k = 1, 2, ... over
every step instead of hoping to hit one by timing.

    from curate.runs.commit import journal_members, output_set, read_set
    with output_set([curated, rejected, report], command="curate filter") as out:
        with out.open(curated) as f: ...
        with out.open(rejected) as f: ...
    read_set(journal_members(curated))       # SetStatus(state="complete", run_id=...)
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as _dt
import errno
import hashlib
import json
import os
import shutil
import signal
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from curate.errors import CurateError

FORMAT = "curate-commit/1"
KILL_ENV = "CURATE_TEST_KILL_AT_STEP"
_steps_seen = 0


def crash_point(name: str) -> None:
    """Test hook at each commit step: SIGKILL ourselves at step number ``$CURATE_TEST_KILL_AT_STEP``."""
    global _steps_seen
    wanted = os.environ.get(KILL_ENV)
    if not wanted:
        return
    _steps_seen += 1
    if _steps_seen == int(wanted):
        os.kill(os.getpid(), signal.SIGKILL)


def new_run_id() -> str:
    """Sortable and unique: UTC time plus 8 random hex digits."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]


def journal_path(primary: str | os.PathLike[str]) -> Path:
    primary = Path(os.path.abspath(primary))
    return primary.with_name(f".{primary.name}.commit.json")


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be opened for fsync
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write_json_atomic(path: Path, value: Any) -> None:
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, indent=2)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _record(path: Path) -> dict[str, Any]:
    st = os.stat(path)
    return {"size": st.st_size, "sha256": sha256_file(path), "ino": st.st_ino, "mtime_ns": st.st_mtime_ns}


def _matches(path: Path, rec: dict[str, Any]) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    if st.st_size != rec.get("size"):
        return False
    if st.st_ino == rec.get("ino") and st.st_mtime_ns == rec.get("mtime_ns"):
        return True  # the very file we renamed in, untouched since
    return sha256_file(path) == rec.get("sha256")


def _load_journal(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:
        raise CurateError(f"{path}: unreadable commit journal ({err}); delete it to accept the files as they are") from None
    return value if isinstance(value, dict) and value.get("format") == FORMAT else None


# ---------------------------------------------------------------- sibling sets: writing


class OutputSet:
    """Members staged beside their targets; :meth:`commit` makes them the current set in one step."""

    def __init__(self, members: Sequence[str | os.PathLike[str]], command: str, run_id: str | None = None):
        if not members:
            raise ValueError("an output set needs at least one member")
        self.members = [Path(os.path.abspath(m)) for m in members]
        self.folder = self.members[0].parent
        if any(m.parent != self.folder for m in self.members):
            raise ValueError("the members of an output set must be siblings in one folder")
        if len({m.name for m in self.members}) != len(self.members):
            raise ValueError("duplicate member names in an output set")
        self.command = command
        self.run_id = run_id or new_run_id()
        self.journal = journal_path(self.members[0])
        self.folder.mkdir(parents=True, exist_ok=True)
        recover_set(self.members)  # a previous run killed mid-commit: finish its commit first
        _remove_stale_staged(self.members)
        self._written: set[Path] = set()

    def staged(self, target: str | os.PathLike[str]) -> Path:
        """The path to write ``target``'s new content to (for writers that want a path, e.g. Parquet)."""
        target = Path(os.path.abspath(target))
        if target not in self.members:
            raise ValueError(f"{target} is not a member of this output set")
        self._written.add(target)
        return target.with_name(f".{target.name}.{self.run_id}.staged")

    @contextlib.contextmanager
    def open(self, target: str | os.PathLike[str], mode: str = "w") -> Iterator[IO[Any]]:
        """A handle on ``target``'s staged file; flushed and fsynced when the block ends."""
        path = self.staged(target)
        encoding = None if "b" in mode else "utf-8"
        with open(path, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())

    def commit(self, extra: dict[str, Any] | None = None) -> str:
        """Journal, rename every member in, mark committed; returns the run id."""
        missing = [m.name for m in self.members if m not in self._written]
        if missing:
            raise ValueError(f"output set committed without writing {', '.join(missing)}")
        records = {}
        for member in self.members:
            staged = self.staged(member)
            fd = os.open(staged, os.O_RDONLY)  # writers given a path (Parquet) did not fsync
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            os.chmod(staged, 0o666 & ~_umask())
            records[member.name] = {**_record(staged), "staged": staged.name}
        crash_point("set:staged")
        old = _load_journal(self.journal)
        previous = None
        if old and old.get("state") == "committed":
            previous = {"run_id": old.get("run_id"), "members": old.get("members", {})}
        journal = {"format": FORMAT, "state": "committing", "run_id": self.run_id, "command": self.command,
                   "committed_at": None, "members": records, "previous": previous, **(extra or {})}
        _write_json_atomic(self.journal, journal)  # the commit point
        crash_point("set:journal")
        _roll_forward(self.journal, journal)
        return self.run_id

    def abort(self) -> None:
        for member in self.members:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(member.with_name(f".{member.name}.{self.run_id}.staged"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _roll_forward(jpath: Path, journal: dict[str, Any]) -> None:
    """Rename every staged member in (skipping those already in), then mark the journal committed."""
    folder = jpath.parent
    for name, rec in journal["members"].items():
        staged = folder / rec["staged"]
        target = folder / name
        try:
            os.replace(staged, target)
            crash_point(f"set:rename:{name}")
            continue
        except FileNotFoundError:
            pass  # renamed already: by the killed run, or by a concurrent roll-forward (both are safe)
        if not _matches(target, rec):
            raise CurateError(f"{target}: the commit of run {journal['run_id']} was interrupted and its staged "
                              f"copy {staged.name} is gone; rerun the command that writes it")
    _fsync_dir(folder)
    done = dict(journal, state="committed",
                committed_at=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    done["members"] = {name: {k: v for k, v in rec.items() if k != "staged"} for name, rec in journal["members"].items()}
    _write_json_atomic(jpath, done)
    crash_point("set:done")


def _remove_stale_staged(members: Iterable[Path]) -> None:
    for member in members:
        for stale in member.parent.glob(f".{member.name}.*.staged"):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


@contextlib.contextmanager
def output_set(members: Sequence[str | os.PathLike[str]], command: str,
               extra: dict[str, Any] | None = None) -> Iterator[OutputSet]:
    """Stage members inside the block; commit them as one set when it ends, discard them on an error.

    Take :func:`curate.runs.lock.output_lock` on the primary member around this (the stage does).
    """
    out = OutputSet(members, command)
    try:
        yield out
    except BaseException:
        out.abort()
        raise
    out.commit(extra)


def commit_files(staging: str | os.PathLike[str], folder: str | os.PathLike[str], command: str,
                 primary: str) -> str:
    """Commit every file written into ``staging`` into ``folder`` as one output set (journal beside
    ``folder/primary``, which must be among them); returns the run id.

    For outputs whose member names are known only once written (a training run: adapter,
    tokenizer files, config, metrics). Sub-folders of ``staging`` are swapped in one by one
    after the set (each atomically), so keep the set's files at the top level.
    """
    staging, folder = Path(staging), Path(os.path.abspath(folder))
    files = sorted(p.name for p in staging.iterdir() if p.is_file() and not p.name.startswith("."))
    if primary not in files:
        raise ValueError(f"{primary} was not written into {staging}")
    names = [primary] + [n for n in files if n != primary]
    out = OutputSet([folder / n for n in names], command)
    for name in names:
        os.replace(staging / name, out.staged(folder / name))
    run_id = out.commit()
    for sub in sorted(p for p in staging.iterdir() if p.is_dir() and not p.name.startswith(".")):
        target = folder / sub.name
        if target.exists() and not target.is_dir():
            target.unlink()
        swap_in_folder(sub, target, run_id)
        shutil.rmtree(folder / f".{sub.name}.{run_id}.old", ignore_errors=True)
    return run_id


def journal_members(primary: str | os.PathLike[str]) -> list[Path]:
    """The members the journal beside ``primary`` names (primary first); just ``[primary]`` without one."""
    primary = Path(os.path.abspath(primary))
    journal = _load_journal(journal_path(primary))
    names = list((journal or {}).get("members", {})) or [primary.name]
    return [primary.with_name(n) for n in names]


# ---------------------------------------------------------------- sibling sets: reading


@dataclass
class SetStatus:
    """What a reader finds: ``complete`` (all members from ``run_id``), ``unmanaged`` (no journal:
    written by hand or by an older curate), ``committing`` (a commit in flight or interrupted:
    :func:`read_set` finishes it), ``incomplete``/``modified`` (members not from the journal's run)."""

    state: str
    run_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.state in ("complete", "unmanaged")

    def describe(self) -> str:
        if self.state == "complete":
            return f"complete set from run {self.run_id}"
        if self.state == "unmanaged":
            return "no commit journal (files not written by a set commit)"
        return f"{self.state} set: " + "; ".join(self.problems)


def verify_set(members: Sequence[str | os.PathLike[str]]) -> SetStatus:
    """Read-only check that the members on disk are the set the journal beside the first one names."""
    paths = [Path(os.path.abspath(m)) for m in members]
    journal = _load_journal(journal_path(paths[0]))
    if journal is None:
        return SetStatus("unmanaged")
    run = journal.get("run_id")
    recs = journal.get("members", {})
    previous = journal.get("previous") or {}
    stray = []
    for path in paths:
        rec = recs.get(path.name)
        if rec is None:
            stray.append(f"{path.name} is not part of run {run}'s set")
        elif not _matches(path, rec):
            old = (previous.get("members") or {}).get(path.name)
            if not path.exists():
                stray.append(f"{path.name} is missing")
            elif old and _matches(path, old):
                stray.append(f"{path.name} is from run {previous.get('run_id')}")
            else:
                stray.append(f"{path.name} was changed after run {run} wrote it")
    if not stray:
        return SetStatus("complete", run)
    if journal.get("state") == "committing":
        return SetStatus("committing", run, [*stray, f"the set is from run {run}, whose commit did not finish"])
    changed_only = all("was changed" in s or "not part" in s for s in stray)
    return SetStatus("modified" if changed_only else "incomplete", run, [*stray, f"the set is from run {run}"])


def recover_set(members: Sequence[str | os.PathLike[str]]) -> bool:
    """Finish a commit a killed run left in state ``committing``; True when something was rolled forward."""
    paths = [Path(os.path.abspath(m)) for m in members]
    jpath = journal_path(paths[0])
    journal = _load_journal(jpath)
    if journal is None or journal.get("state") != "committing":
        return False
    _roll_forward(jpath, journal)
    return True


def read_set(members: Sequence[str | os.PathLike[str]], wait_s: float = 2.0) -> SetStatus:
    """What every curate reader calls before reading a stage's files: verify, finish an interrupted
    commit, and raise CurateError when the files are not one run's set.

    The commit is finished under the output lock when it is free. When a live run holds the lock
    the reader first gives that run ``wait_s`` to finish its own commit (milliseconds normally),
    then rolls forward itself: renames of a decided commit are idempotent, so racing a writer
    (or a writer that is recovering the same journal) is safe. Files with no journal
    (hand-made, or older curate) are accepted as they are.
    """
    from curate.runs.lock import acquire

    paths = [Path(os.path.abspath(m)) for m in members]
    deadline = time.monotonic() + wait_s
    while True:
        status = verify_set(paths)
        if status.state != "committing":
            break
        try:
            held = acquire(paths[0], "curate (finishing an interrupted commit)", notice=lambda _: None)
        except CurateError:
            if time.monotonic() < deadline:
                time.sleep(0.05)  # a live writer between its journal and its last rename: milliseconds
                continue
            held = None  # a live run that has not recovered the killed commit yet: finish it ourselves
        try:
            recover_set(paths)
        except OSError as err:  # e.g. a read-only copy: say what is wrong instead of reading a mix
            raise CurateError(f"{paths[0]}: {status.describe()}; cannot finish it here ({err})") from None
        finally:
            if held is not None:
                held.release()
    if status.state in ("incomplete", "committing"):
        raise CurateError(f"{paths[0].parent}: {status.describe()}; rerun the stage that wrote it")
    return status


# ---------------------------------------------------------------- folder outputs

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False where the platform cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def _fsync_tree(root: Path) -> None:
    for folder, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(folder))


def _folder_journal(target: Path) -> Path:
    return target.with_name(f".{target.name}.swap.json")


def recover_folder(target: str | os.PathLike[str]) -> None:
    """Finish a two-rename swap a killed run left behind; remove stale staging and old copies."""
    target = Path(os.path.abspath(target))
    jpath = _folder_journal(target)
    if jpath.exists():
        info = json.loads(jpath.read_text(encoding="utf-8"))
        staged, old = target.with_name(info["staged"]), target.with_name(info["old"])
        if not target.exists() and staged.exists():
            os.rename(staged, target)  # roll forward: the new folder was complete before the journal
        elif not target.exists() and old.exists():
            os.rename(old, target)
        _fsync_dir(target.parent)
        jpath.unlink()
    for stale in list(target.parent.glob(f".{target.name}.*.staged")) + list(target.parent.glob(f".{target.name}.*.old")):
        shutil.rmtree(stale, ignore_errors=True)


def swap_in_folder(staged: Path, target: Path, run_id: str) -> None:
    """Make the complete folder ``staged`` the folder ``target`` in one step; the old one is removed."""
    _fsync_tree(staged)
    crash_point("folder:staged")
    if not target.exists():
        os.rename(staged, target)
        _fsync_dir(target.parent)
        crash_point("folder:renamed")
        return
    if _exchange(staged, target):
        _fsync_dir(target.parent)
        crash_point("folder:exchanged")
        shutil.rmtree(staged, ignore_errors=True)  # now holds the old folder
        return
    old = target.with_name(f".{target.name}.{run_id}.old")
    jpath = _folder_journal(target)
    _write_json_atomic(jpath, {"format": FORMAT, "staged": staged.name, "old": old.name, "run_id": run_id})
    os.rename(target, old)
    crash_point("folder:moved-old")
    os.rename(staged, target)
    _fsync_dir(target.parent)
    jpath.unlink()
    shutil.rmtree(old, ignore_errors=True)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


@contextlib.contextmanager
def output_folder(target: str | os.PathLike[str], run_id: str | None = None,
                  keep_existing: bool = False) -> Iterator[Path]:
    """Yield a fresh staging folder beside ``target``; when the block ends it replaces ``target`` atomically.

    ``keep_existing=True`` starts the staging folder as a hard-linked copy of ``target`` (files
    the stage does not write, such as a user's LICENSE or .git, survive the swap). Those files
    are shared with the old folder: replace them (write aside, rename), never write into them.
    On an error the staging folder is removed and ``target`` is untouched. Take the output
    lock on ``target`` around this.
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    recover_folder(target)
    run_id = run_id or new_run_id()
    staged = target.with_name(f".{target.name}.{run_id}.staged")
    if keep_existing and target.is_dir():
        shutil.copytree(target, staged, symlinks=True, copy_function=_link_or_copy)
    else:
        staged.mkdir()
    try:
        yield staged
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    swap_in_folder(staged, target, run_id)
