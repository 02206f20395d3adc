"""Entries for the training tools people already have: LLaMA-Factory's ``dataset_info.json`` and an Axolotl snippet.

Field names as documented by the tools:

- LLaMA-Factory (``data/README.md``): a dataset entry with ``file_name`` (a file or folder under
  ``dataset_dir``; json, jsonl, csv, parquet and arrow are read) or ``hf_hub_url`` + ``split``,
  ``formatting: sharegpt`` with ``columns: {messages: ...}`` and ``tags`` (``role_tag``,
  ``content_tag``, ``user_tag``, ``assistant_tag``, ``system_tag``) for OpenAI-style messages.
- Axolotl (``docs/dataset-formats/conversation``): ``datasets: [{path, type: chat_template,
  field_messages, message_property_mappings: {role, content}, roles_to_train}]``.

Our shards keep ``messages`` as ``[{role, content}]`` with roles system/user/assistant, so both
tools train on the export as it is, without a conversion.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

LLAMAFACTORY_FILE = "dataset_info.json"
AXOLOTL_FILE = "axolotl.yaml"


def llamafactory_entry(name: str, repo_id: str | None, train_shards: list[str], only_train: bool) -> dict[str, Any]:
    """One ``dataset_info.json`` entry for the export (placed in the export folder, its ``dataset_dir``)."""
    entry: dict[str, Any] = {}
    if repo_id:
        entry.update(hf_hub_url=repo_id, split="train")
    else:
        # the folder when it holds only train shards, else the one train shard (file_name takes no glob)
        entry["file_name"] = "data" if only_train or len(train_shards) != 1 else f"data/{train_shards[0]}"
    entry.update(
        formatting="sharegpt",
        columns={"messages": "messages"},
        tags={"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant",
              "system_tag": "system"},
    )
    return {name: entry}


def axolotl_config(repo_id: str | None, fmt: str) -> dict[str, Any]:
    """The ``datasets:`` block of an Axolotl config that trains on the export's train split."""
    dataset: dict[str, Any] = {"path": repo_id} if repo_id else {
        "path": ".", "ds_type": fmt if fmt == "parquet" else "json", "data_files": [f"data/train-*.{fmt}"]}
    dataset.update(split="train", type="chat_template", field_messages="messages",
                   message_property_mappings={"role": "role", "content": "content"}, roles_to_train=["assistant"])
    return {"datasets": [dataset]}


def write_tool_files(out: Path, name: str, repo_id: str | None, shards: dict[str, list[Path]], fmt: str) -> list[Path]:
    """Write both files into the export folder; returns their paths."""
    info = out / LLAMAFACTORY_FILE
    entry = llamafactory_entry(name, repo_id, [p.name for p in shards.get("train", [])], list(shards) == ["train"])
    info.write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    axolotl = out / AXOLOTL_FILE
    text = "# Axolotl: paste into your config (paths relative to this folder)\n"
    axolotl.write_text(text + yaml.safe_dump(axolotl_config(repo_id, fmt), sort_keys=False), encoding="utf-8")
    return [info, axolotl]
