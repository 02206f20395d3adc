"""`curate push`: export records and upload the folder (shards, card, stage manifests) to the Hugging Face Hub."""

from __future__ import annotations

import click


@click.command("push", short_help="Export and upload a dataset to the Hugging Face Hub.")
@click.argument("records")
@click.option("--repo-id", required=True, help="Dataset repository, ORG/NAME.")
@click.option("--private", is_flag=True, help="Create the repository as private (an existing one keeps its setting).")
@click.option("--out", "-o", type=click.Path(file_okay=False),
              help="Also keep the uploaded folder here [default: a temp folder, removed after].")
@click.option("--split-eval", default=0.0, show_default=True, type=float,
              help="Fraction of rows held out as the 'test' split.")
@click.option("--format", "fmt", default="parquet", show_default=True, type=click.Choice(["parquet", "jsonl"]))
@click.option("--license", "license_", help="Licence id for the card [default: the hub card's, else inferred].")
def command(records: str, repo_id: str, private: bool, out: str | None, split_eval: float, fmt: str,
            license_: str | None) -> None:
    """Upload the curate RECORDS file to the dataset repo REPO_ID as one commit.

    The token comes from HF_TOKEN or `hf auth login` and is never written anywhere. The
    repo's existing card metadata is merged into the new card, not overwritten.
    """
    from curate.hub.push import push_dataset
    from curate.records.sources import records_file

    with records_file(records, say=lambda line: click.echo(line, err=True)) as path:  # Parquet, Arrow, hub ids, ...
        result = push_dataset(path, repo_id, private=private, out=out, split_eval=split_eval, format=fmt,
                              license=license_)
    rows = sum(result.export.splits.values())
    click.echo(f"pushed {rows} rows to {result.url} (commit {result.commit[:10] or '?'})")
