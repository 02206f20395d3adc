"""One run per output at a time: an exclusive lock beside a stage's output, and a writability check.

    from curate.runs.lock import output_lock, check_writable
    check_writable(out)                              # before any work: one line, exit 2
    with output_lock(out, "curate filter"):          # second live run: CurateError, exit 2
        ...write outputs...

    @locks_output("out", "curate filter")            # the same two, as one line on a stage function
    def run_filter(source, out, cfg): ...

The lock is a small file beside the output, ``.NAME.lock`` (``NAME`` is the output file or
folder's name), holding JSON: pid, host, command, start time. It sits *beside* the output
rather than inside it so that folder outputs can be swapped in by rename without moving
their own lock.

Why ``flock`` and not only ``O_EXCL``: a lock taken with ``fcntl.flock`` is released by the
kernel when its holder dies (kill -9 included), so a dead holder can never be mistaken for a
live one and two runs that both find a stale file cannot both take it over (the classic
``O_EXCL`` + "unlink the stale file" race). The JSON inside is for the message only: a run
that gets the flock while the file still names another pid took over a stale lock and says
so. Where the filesystem has no ``flock`` the lock falls back to ``O_EXCL`` create plus a
liveness check of the recorded pid (stale only when it is on this host and that pid is gone).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import functools
import inspect
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from curate.errors import CurateError

try:  # not on Windows
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

F = TypeVar("F", bound=Callable[..., Any])


def lock_path(target: str | os.PathLike[str]) -> Path:
    """Where the lock of output ``target`` (a file or a folder) lives: ``.NAME.lock`` beside it."""
    target = Path(os.path.abspath(target))
    return target.with_name(f".{target.name}.lock")


def _stderr_notice(line: str) -> None:
    print(f"notice: {line}", file=sys.stderr, flush=True)


def _describe(info: dict[str, Any], target: Path) -> str:
    cmd = f" ({info['command']})" if info.get("command") else ""
    return f"{target} is in use by pid {info.get('pid', '?')} on {info.get('host', '?')} since {info.get('started', '?')}{cmd}"


def _read_info(fd: int) -> dict[str, Any] | None:
    os.lseek(fd, 0, os.SEEK_SET)
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    if not data.strip():
        return None
    try:
        info = json.loads(data)
    except ValueError:
        return {"pid": "?", "host": "?", "started": "?", "command": "unreadable lock file"}
    return info if isinstance(info, dict) else None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def _my_info(command: str) -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "command": command,
            "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


class OutputLock:
    """A held lock; release it with :meth:`release` (or use :func:`output_lock`)."""

    def __init__(self, target: Path, path: Path, fd: int | None, took_over: dict[str, Any] | None):
        self.target = target
        self.path = path
        self._fd = fd
        self.took_over = took_over
        self.created: list[Path] = []  # folders made for the lock: removed again if the run left them empty

    def release(self) -> None:
        if self._fd is None and not self.path.exists():
            return
        # unlink first, then drop the flock: a waiter that opened the old inode re-checks the path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for folder in self.created:  # deepest first; a failed run leaves no empty output folder behind
            try:
                folder.rmdir()
            except OSError:
                break
        self.created = []


def acquire(target: str | os.PathLike[str], command: str,
            notice: Callable[[str], None] = _stderr_notice) -> OutputLock:
    """Take the lock of output ``target`` or raise CurateError naming the run that holds it."""
    target = Path(os.path.abspath(target))
    path = lock_path(target)
    missing = []
    for folder in [path.parent, *path.parent.parents]:
        if folder.exists():
            break
        missing.append(folder)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CurateError(f"{path.parent}: cannot create the output folder: {err.strerror or err}") from err
    mine = _my_info(command)
    held = None
    if fcntl is not None:
        with contextlib.suppress(_NoFlock):
            held = _acquire_flock(target, path, mine, notice)
    held = held or _acquire_excl(target, path, mine, notice)
    held.created = missing
    return held


class _NoFlock(Exception):
    pass


def _acquire_flock(target: Path, path: Path, mine: dict[str, Any], notice: Callable[[str], None]) -> OutputLock:
    for _ in range(50):  # retried only while a releasing holder unlinks the file under us
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise CurateError(f"{path.parent}: cannot write the lock file: {err.strerror or err}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                info = _read_info(fd) or {}
                os.close(fd)
                raise CurateError(_describe(info, target)) from None
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise _NoFlock from err
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the holder released (unlinked) between our open and our flock: start again
            os.close(fd)
            continue
        previous = _read_info(fd)
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(mine) + "\n").encode())
        os.fsync(fd)
        if previous and previous.get("pid") != mine["pid"]:
            notice(f"took over a stale lock on {target}: pid {previous.get('pid')} on {previous.get('host')} "
                   f"(since {previous.get('started')}, {previous.get('command')}) is gone")
        return OutputLock(target, path, fd, previous)
    raise CurateError(f"{path}: could not take the lock (it keeps changing); try again")


def _acquire_excl(target: Path, path: Path, mine: dict[str, Any], notice: Callable[[str], None]) -> OutputLock:
    """Fallback without flock: O_EXCL create of a complete file (written aside, then hard-linked in)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.write(fd, (json.dumps(mine) + "\n").encode())
        os.fsync(fd)
        os.close(fd)
        for _ in range(2):
            try:
                os.link(tmp, path)  # atomic, fails if it exists: the lock file is never seen half written
                return OutputLock(target, path, None, None)
            except FileExistsError:
                try:
                    info = json.loads(path.read_text() or "{}")
                except (OSError, ValueError):
                    info = {}
                stale = info.get("host") == mine["host"] and not _pid_alive(info.get("pid"))
                if not stale:
                    raise CurateError(_describe(info, target)) from None
                notice(f"took over a stale lock on {target}: pid {info.get('pid')} on {info.get('host')} is gone")
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        raise CurateError(f"{path}: could not take the lock; try again")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str], command: str,
                notice: Callable[[str], None] = _stderr_notice) -> Iterator[OutputLock]:
    """Hold the exclusive lock of output ``target`` (file or folder) for the ``with`` body."""
    held = acquire(target, command, notice)
    try:
        yield held
    finally:
        held.release()


def _secondary_rank() -> bool:
    """True in the non-zero ranks of a distributed launch (torchrun / accelerate set RANK): one run, one lock."""
    try:
        return int(os.environ.get("RANK", "0")) != 0
    except ValueError:
        return False


@contextlib.contextmanager
def guard_output(target: str | os.PathLike[str], command: str, *,
                 folder: bool = False) -> Iterator[OutputLock | None]:
    """:func:`check_writable` then :func:`output_lock`: what a stage does before any work.

    In a click command: ``click.get_current_context().with_resource(guard_output(out, "curate import"))``.
    Under a multi-process launch (``accelerate launch``, ``torchrun``) only rank 0 takes the lock:
    the other ranks are the same run, not a second one.
    """
    check_writable(target, folder=folder)
    if _secondary_rank():
        yield None
        return
    with output_lock(target, command) as held:
        yield held


def locks_output(param: str, command: str, *, folder: bool = False) -> Callable[[F], F]:
    """Decorator for a stage's library function: check that its output argument ``param`` is
    writable, then hold :func:`output_lock` on it while the function runs::

        @locks_output("out", "curate filter")
        def run_filter(source, out, cfg, ...): ...
    """

    def wrap(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            name, *attrs = param.split(".")
            target = signature.bind(*args, **kwargs).arguments[name]
            for attr in attrs:  # "config.out": the output is a field of a config argument
                target = getattr(target, attr)
            with guard_output(target, command, folder=folder):
                return fn(*args, **kwargs)

        return inner  # type: ignore[return-value]

    return wrap


def check_writable(target: str | os.PathLike[str], *, folder: bool = False) -> Path:
    """Fail early, with one line, when output ``target`` cannot be written; returns the folder checked.

    ``target`` is an output file (its parent folder must be writable, created if missing) or,
    with ``folder=True``, an output folder (it, or the nearest existing parent, must be
    writable). Probes by creating and removing a file, so read-only mounts and ACLs are caught
    too, not only mode bits.
    """
    target = Path(os.path.abspath(target))
    if not folder and target.is_dir():
        raise CurateError(f"{target}: is a folder; give a file name for the output")
    if folder and target.exists() and not target.is_dir():
        raise CurateError(f"{target}: exists and is not a folder")
    where = target if folder else target.parent
    probe_dir = where
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    if not probe_dir.is_dir():
        raise CurateError(f"{probe_dir}: is not a folder; cannot write {target}")
    if folder and target.exists():
        # a folder output is swapped in beside itself: its parent must be writable too
        _probe(target.parent, target)
    _probe(probe_dir, target)
    if not folder and target.exists() and not os.access(target, os.W_OK):
        # replacing a read-only file is allowed by rename, but the user marked it read-only: say so
        raise CurateError(f"{target}: the existing output is read-only; make it writable or choose another --out")
    return where


def _probe(directory: Path, target: Path) -> None:
    try:
        fd, tmp = tempfile.mkstemp(prefix=".curate-write-check.", dir=directory)
    except OSError as err:
        reason = err.strerror or str(err)
        raise CurateError(f"{directory}: output folder is not writable ({reason}); cannot write {target}") from None
    os.close(fd)
    os.unlink(tmp)
