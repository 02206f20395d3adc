"""`curate import`: bring any source (file, folder, Arrow, Parquet, hub id; any common SFT format) in as records."""

from __future__ import annotations

import click

from curate.records.formats import FORMATS


@click.command("import", short_help="Import Alpaca, ShareGPT, Dolly, ... from JSON, Parquet, Arrow or the hub.")
@click.argument("sources", nargs=-1, required=True)
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False), help="Records JSONL to write.")
@click.option("--format", "format_name", default="auto", show_default=True,
              type=click.Choice(["auto", *FORMATS]), help="Input format; auto detects it from the first row.")
@click.option("--weights", help="Mix several SOURCES in these proportions, e.g. 0.5,0.3,0.2 (one per source).")
@click.option("--size", type=int, help="Rows in the mixture [default: as many as the weights allow without repeats].")
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the mixture's sampling.")
@click.option("--source-name", help="What meta.source says [default: the file stem, folder name or hub id].")
@click.option("--skip-invalid", is_flag=True,
              help="Set bad rows aside in a quarantine file with the reason instead of stopping.")
@click.option("--quarantine", type=click.Path(dir_okay=False),
              help="Where --skip-invalid puts bad rows [default: OUT's name + .invalid.jsonl].")
def command(sources: tuple[str, ...], out: str, format_name: str, weights: str | None, size: int | None, seed: int,
            source_name: str | None, skip_invalid: bool, quarantine: str | None) -> None:
    """Import SOURCES as curate records into OUT.

    A source is a JSONL file or JSON array (maybe .gz), a Parquet file, a folder of shards
    (data/*.parquet as on the hub, or a `curate export` folder), an Arrow folder from
    Dataset.save_to_disk (FOLDER@split picks a split), or a hub dataset id ORG/NAME[:config][@split]
    (read from the local datasets cache when it is there). Ids the source already has are
    kept in meta.source_id, unknown fields in meta.extra; meta.source names the source and
    meta.format the format it had. Several sources make a mixture (--weights samples it).
    """
    from curate.errors import CurateError
    from curate.records.convert import import_file, mix_sources, parse_weights
    from curate.records.jsonl import write_json
    from curate.runs.lock import guard_output
    from curate.runs.names import import_report_path, quarantine_path

    click.get_current_context().with_resource(guard_output(out, "curate import"))  # writable, one run per --out
    if len(sources) == 1:
        for flag, value in (("--weights", weights), ("--size", size)):
            if value is not None:
                raise CurateError(f"{flag} applies to a mixture of several sources")
        side = quarantine or quarantine_path(out)
        summary = import_file(sources[0], out, format_name, skip_invalid, side, source_name)
    else:
        for flag, value in (("--skip-invalid", skip_invalid or None), ("--quarantine", quarantine),
                            ("--source-name", source_name)):
            if value is not None:
                raise CurateError(f"{flag} applies to a single source, not a mixture")
        summary = mix_sources(list(sources), out, parse_weights(weights, len(sources)), size, seed, format_name)
    write_json(import_report_path(out), summary.report(out))  # the import's evidence, read by the dataset card
    click.echo(summary.notice, err=True)
    line = f"imported {summary.records} records from {summary.source} into {out}"
    if summary.per_source:
        line += " (" + ", ".join(f"{name} {n}" for name, n in summary.per_source.items()) + ")"
    if skip_invalid:
        line += f"; {summary.invalid} invalid rows set aside"
        if summary.quarantine:
            line += f" in {summary.quarantine}"
    click.echo(line)
