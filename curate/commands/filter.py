"""`curate filter`: quality filters, decontamination, exact + MinHash near-duplicate removal."""

from __future__ import annotations

import click

# kept in step with curate.filtering.dedup.config / curate.filtering.rules by tests/filter/test_filter_cli.py; written
# out here so that `curate --help` does not import polars
PRESETS = ("sft", "self-instruct", "none")
ENGINES = ("oph", "datasketch")
DEDUP_ON = ("pair", "prompt", "response", "both")
KEEP_POLICIES = ("first", "longest", "best-score")
VERIFY_MODES = ("none", "signature", "exact")


@click.command("filter", short_help="Filter and deduplicate records; every dropped row explained.")
@click.argument("source")
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Kept rows; rejected.jsonl, filter_report.json and filter_config.yaml go beside it.")
@click.option("--preset", type=click.Choice(PRESETS), help="Quality filters  [default: sft]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="YAML with preset / filters / thresholds / dedup settings; flags override it.")
@click.option("--decontaminate", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Evaluation set(s): drop rows sharing a long n-gram with one of their prompts or answers.")
@click.option("--decontam-ngram", type=int, help="Words per n-gram for --decontaminate  [default: 13]")
@click.option("--against", multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="Earlier curated set(s): drop rows that duplicate them (they are never modified).")
@click.option("--no-dedup", is_flag=True, default=None, help="Skip near-duplicate removal (exact dedup still runs).")
@click.option("--threshold", type=float,
              help="Jaccard similarity of near-duplicates (the prompts' for pair)  [default: pair 0.3, else 0.7]")
@click.option("--ngram", type=int, help="Shingle size in words  [default: 5]")
@click.option("--num-perm", type=int, help="MinHash permutations  [default: 128]")
@click.option("--bands", type=int, help="LSH bands (with --rows); default from --threshold")
@click.option("--rows", type=int, help="Rows per LSH band (with --bands)")
@click.option("--keep", type=click.Choice(KEEP_POLICIES), help="Which duplicate survives  [default: first]")
@click.option("--score-key", help="scores field for --keep best-score  [default: first one found]")
@click.option("--dedup-on", type=click.Choice(DEDUP_ON),
              help="Text compared: pair (prompt similar AND response similar) | prompt | response | both (one text)"
                   "  [default: pair]")
@click.option("--response-threshold", type=float, help="--dedup-on pair: Jaccard of the responses  [default: 0.4]")
@click.option("--multi-turn", type=click.Choice(["first-user", "all"]), help="Turns compared  [default: all]")
@click.option("--verify", type=click.Choice(VERIFY_MODES), help="Check candidate pairs  [default: signature]")
@click.option("--clustering", type=click.Choice(["greedy", "components"]),
              help="greedy: drop rows matching a kept row; components: merge chains  [default: greedy]")
@click.option("--minhash-engine", "engine", type=click.Choice(ENGINES), help="MinHash: oph, or datasketch's own hashing  [default: oph]")
@click.option("--seed", type=int, help="Hash seed  [default: 1]")
@click.option("--trust-ids", "check_ids", flag_value=False, default=None,
              help="Do not re-hash messages to check ids (faster on big trusted files; schema still checked).")
@click.option("--strip-special-tokens", is_flag=True, default=None,
              help="Remove a trailing chat-template special token ('<|endoftext|>', ...) from each answer instead "
                   "of rejecting the row.")
@click.option("--pii", type=click.Choice(["reject", "mask"]),
              help="Personal data (e-mail, phone, IP, card numbers, API keys): reject the row or mask it.")
@click.option("--native-read", is_flag=True, default=None,
              help="Parse and check clean JSONL with Polars instead of Python (same results).")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the stages run: this process, or a Ray cluster (pip install 'curate[ray]').")
@click.option("--address", help="--executor ray: the cluster (auto | ray://HOST:PORT)  [default: start a local one]")
@click.option("--skip-invalid", is_flag=True, help="Quarantine malformed rows instead of stopping.")
@click.option("--quarantine", type=click.Path(dir_okay=False), help="[default: OUT's name + .invalid.jsonl]")
def command(source: str, out: str, config_path: str | None, skip_invalid: bool, quarantine: str | None,
            executor: str, address: str | None, **flags: object) -> None:
    """Filter SOURCE (curate records, or anything `curate import` reads: converted on the way in) into OUT.

    Stages: quality filters (--preset), decontamination, exact dedup, MinHash LSH near-dedup.
    Every dropped row goes to rejected.jsonl with its stage, reason and detail.
    """
    from rich.console import Console

    from curate.filtering.console import summary_table
    from curate.filtering.pipeline import load_config, run_filter

    for name in ("decontaminate", "against"):
        flags[name] = list(flags[name]) or None  # type: ignore[call-overload]
    cfg = load_config(config_path, flags)
    from curate.records.sources import records_file

    with records_file(source, say=lambda line: click.echo(line, err=True)) as path:  # Parquet, Arrow, hub ids, ...
        result = run_filter(path, out, cfg, skip_invalid, quarantine, progress=True, executor=executor,
                            address=address)
    Console(stderr=True).print(summary_table(result.report))
    click.echo(f"kept {result.report['kept']} of {result.report['in']} rows -> {out}; "
               f"rejected -> {result.paths['rejected']}; report -> {result.paths['report']}")
    if result.report["kept"] == 0:  # outputs stay (they explain every row), but nothing useful came out
        click.echo("error: no row kept: every row was rejected (reasons above and in the rejected file)", err=True)
        raise SystemExit(1)
