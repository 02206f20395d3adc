"""`curate export`: write records as a hub-ready folder (Parquet shards + README.md dataset card)."""

from __future__ import annotations

import click


@click.command("export", short_help="Write a hub-ready dataset folder: Parquet shards + dataset card.")
@click.argument("records")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Folder to write.")
@click.option("--format", "fmt", default="parquet", show_default=True, type=click.Choice(["parquet", "jsonl"]),
              help="Shard file format.")
@click.option("--split-eval", default=0.0, show_default=True, type=float,
              help="Fraction of rows held out as the 'test' split (chosen by a seeded hash of the id).")
@click.option("--seed", default=0, show_default=True, type=int, help="Salt of the split hash.")
@click.option("--max-shard-size", default="500MB", show_default=True,
              help="Largest shard, uncompressed (e.g. 500MB, 2GB).")
@click.option("--license", "license_", help="Licence id for the card [default: the existing card's, else inferred].")
@click.option("--language", multiple=True, help="Language code(s) for the card [default: en]; repeat for more.")
@click.option("--name", "pretty_name", help="Pretty name for the card [default: the folder's name].")
@click.option("--strict", is_flag=True, help="Refuse to export duplicate ids (default: a warning).")
def command(records: str, out: str, fmt: str, split_eval: float, seed: int, max_shard_size: str,
            license_: str | None, language: tuple[str, ...], pretty_name: str | None, strict: bool) -> None:
    """Export the curate RECORDS file to OUT: data/<split>-NNNNN-of-NNNNN.<format> and README.md.

    The stage files beside RECORDS (manifest.json, filter_config.yaml, filter_report.json)
    are copied to OUT/provenance/ and summarized in the card; an existing README.md is merged.
    """
    import sys

    from curate.hub.export import export_records, parse_size
    from curate.hub.scan import ExportConfig

    config = ExportConfig(out=out, format=fmt, split_eval=split_eval, seed=seed,
                          max_shard_bytes=parse_size(max_shard_size), license=license_,
                          language=list(language) or None, pretty_name=pretty_name, strict=strict)
    from curate.records.sources import records_file

    with records_file(records, say=lambda line: click.echo(line, err=True)) as path:  # Parquet, Arrow, hub ids, ...
        result = export_records(path, config, progress=sys.stderr.isatty())
    shards = sum(len(paths) for paths in result.shards.values())
    splits = ", ".join(f"{split} {count}" for split, count in result.splits.items())
    click.echo(f"exported {splits} rows in {shards} {fmt} shard(s) to {result.out}; card: {result.card}")
