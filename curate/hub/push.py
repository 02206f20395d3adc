"""`curate push`: export records and upload the folder to the Hugging Face Hub in one commit.

    HF_TOKEN=hf_... curate push curated.jsonl --repo-id ORG/NAME [--private] [--out keep/here]

The uploaded folder is exactly what `curate export` writes (shards, README.md card, and
the stage manifests/configs under ``provenance/``). The order of operations keeps the
remote untouched until the last step:

1. the token comes from ``HF_TOKEN`` or the user's ``hf auth login``; it is passed to the
   client and never written anywhere (no login call, nothing saved);
2. a read-only ``whoami`` proves the hub is reachable and the token valid: with no network
   the command stops here with one line, having written nothing remote;
3. the repository's current README.md, if any, is downloaded so its metadata is merged into
   the new card, not overwritten (distilabel users lose theirs on every push);
4. the export is written locally (a temp folder unless ``--out``);
5. ``create_repo(exist_ok=True)`` and one ``upload_folder`` commit, which also deletes stale
   shards under ``data/`` so a re-push with fewer shards cannot leave duplicates behind.
"""

from __future__ import annotations

import importlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from curate.errors import CurateError
from curate.hub.export import ExportResult, export_records
from curate.hub.scan import ExportConfig

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")


@dataclass
class PushResult:
    repo_id: str
    url: str
    commit: str
    export: ExportResult


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection failures as huggingface_hub's HTTP client raises them (OSError covers offline mode)."""
    errors: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def resolve_token(token: str | None = None) -> str:
    from huggingface_hub import get_token

    token = token or get_token()
    if not token:
        raise CurateError("no Hugging Face token: set HF_TOKEN or run `hf auth login` (nothing was uploaded)")
    return token


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def push_dataset(source: str | Path, repo_id: str, *, private: bool = False, out: str | Path | None = None,
                 token: str | None = None, **export_options: Any) -> PushResult:
    """Export ``source`` and upload it to the dataset repo ``repo_id`` (see the module docstring)."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, RepositoryNotFoundError

    if not _REPO_ID.match(repo_id):
        raise CurateError(f"--repo-id must look like ORG/NAME, got {repo_id!r}")
    if not Path(source).is_file():
        raise CurateError(f"{source}: no such file")
    token = resolve_token(token)
    api = HfApi(token=token)
    network = _network_errors()
    where = constants.ENDPOINT
    try:
        api.whoami()
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        if status == 401:
            raise CurateError("the Hugging Face token was rejected (401); set a valid HF_TOKEN "
                              "(nothing was uploaded)") from None
        raise CurateError(f"{where} answered {_first_line(err)} (nothing was uploaded)") from None
    except network as err:
        raise CurateError(f"cannot reach {where} to push {repo_id} ({_first_line(err)}); "
                          "nothing was uploaded") from None

    scratch = Path(tempfile.mkdtemp(prefix="curate-push-"))
    try:
        folder = Path(out) if out else scratch / "export"
        try:
            remote_card = api.hf_hub_download(repo_id, "README.md", repo_type="dataset",
                                              local_dir=scratch / "remote")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(remote_card, folder / "README.md")
        except (RepositoryNotFoundError, EntryNotFoundError):
            pass  # a new repository, or one without a card: nothing to merge
        except network as err:
            raise CurateError(f"cannot reach {where} ({_first_line(err)}); nothing was uploaded") from None
        result = export_records(source, ExportConfig(out=folder, repo_id=repo_id, **export_options))
        try:
            api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=repo_id, repo_type="dataset", folder_path=folder,
                commit_message=f"curate push: {sum(result.splits.values())} rows",
                delete_patterns=["data/*"],
            )
        except HfHubHTTPError as err:
            raise CurateError(f"upload to {repo_id} failed: {_first_line(err)}") from None
        except network as err:
            raise CurateError(f"upload to {repo_id} failed, connection lost ({_first_line(err)}); "
                              "a commit is all-or-nothing, so run the push again") from None
        return PushResult(repo_id, f"{where}/datasets/{repo_id}", getattr(commit, "oid", "") or "", result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
