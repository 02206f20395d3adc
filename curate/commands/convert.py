"""`curate convert`: write records back out as Alpaca, ShareGPT, Dolly, Self-Instruct, ..."""

from __future__ import annotations

import click

from curate.records.formats import FORMATS


@click.command("convert", short_help="Write records back out as Alpaca, ShareGPT, Dolly, ...")
@click.argument("records")
@click.option("--to", "format_name", required=True, type=click.Choice(list(FORMATS)), help="Output format.")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="File to write: a JSON array when it ends in .json, else JSONL (.gz compresses).")
def command(records: str, format_name: str, out: str) -> None:
    """Convert the curate RECORDS file to another format; ids and extra fields are restored."""
    from curate.records.convert import export_file
    from curate.runs.lock import guard_output

    click.get_current_context().with_resource(guard_output(out, "curate convert"))  # writable, one run per --out
    count = export_file(records, out, format_name)
    click.echo(f"wrote {count} rows as {format_name} to {out}")
