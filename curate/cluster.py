"""Joining or starting a Ray cluster for ``--executor ray``: one session rule for `curate filter` and `curate score`.

Ray is an optional extra; without it the one line below says how to install it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from curate.errors import CurateError

INSTALL = "install curate[ray] to use --executor ray (pip install 'curate[ray]')"


def import_ray() -> Any:
    """The ``ray`` module, or the install hint as a one-line error."""
    try:
        import ray
    except ImportError:
        raise CurateError(INSTALL) from None
    return ray


@contextmanager
def session(address: str | None) -> Iterator[Any]:
    """Connect to ``address`` (auto, ray://host:port), start a local Ray, or use the one already initialized."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        # no --address: a new local Ray (ray.init() alone would join any `ray start` cluster recorded on this machine)
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        hint = ""
        if str(address).startswith("ray://"):
            hint = " (is the head's Ray Client port reachable, and is the cluster's auth token set here if it uses one?)"
        raise CurateError(f"--address {address}: cannot connect to a Ray cluster: {exc}{hint}") from None
    try:
        yield ray
    finally:
        ray.shutdown()
