"""`curate select`: choose rows by a score (top-N, fraction, thresholds, diversity gate) or at random."""

from __future__ import annotations

import click


@click.command("select", short_help="Choose the best rows by a score; the rest go to unselected.jsonl.")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Chosen rows; unselected.jsonl, select_report.json and select_config.yaml go beside it.")
@click.option("--by", help="The scores field to rank by (e.g. ifd, judge, length).")
@click.option("--top", type=int, help="Keep the N best rows.")
@click.option("--top-fraction", type=float, help="Keep this fraction of the input, e.g. 0.1.")
@click.option("--min", "min_", type=float, help="Drop rows scoring below this.")
@click.option("--max", "max_", type=float, help="Drop rows scoring above this.")
@click.option("--ascending", is_flag=True, default=None, help="Lowest scores are best (e.g. perplexity).")
@click.option("--diversity", type=float,
              help="Greedy gate: take a row only if its similarity to every chosen row is below this (e.g. 0.7).")
@click.option("--similarity", type=click.Choice(["minhash", "embedding"]),
              help="Similarity for --diversity  [default: minhash]")
@click.option("--random", "random_", type=int, help="Draw N rows uniformly at random instead (a control).")
@click.option("--seed", type=int, help="Seed for --random  [default: 0]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="YAML with any field of curate.selection.SelectConfig; flags override it.")
def command(source: str, out: str, config_path: str | None, **flags: object) -> None:
    """Choose rows of SOURCE (scored curate records) into OUT; every other row goes to unselected.jsonl
    with reject {stage: select, reason}. Ties are broken by id, so the same input gives the same subset."""
    from curate.config import build, read_yaml
    from curate.errors import CurateError
    from curate.selection import SelectConfig, run_select

    names = {"min_": "min", "max_": "max", "random_": "random"}
    given = {names.get(k, k): v for k, v in flags.items() if v is not None}
    if given.get("seed") is not None and given.get("random") is None:
        raise CurateError("--seed applies to --random only (ranking by a score is deterministic)")
    if given.get("similarity") is not None and given.get("diversity") is None:
        raise CurateError("--similarity applies to --diversity only")
    layers = [read_yaml(config_path)[::-1]] if config_path else []
    cfg = build(SelectConfig, [*layers, ("flags", given)])
    report, paths = run_select(source, out, cfg)
    subset, longest = report["subset"], report["overlap_with_longest"]
    mean = subset["mean_score"]
    click.echo(f"chose {report['chosen']} of {report['in']} rows -> {out}"
               + (f"; mean {cfg.by} {mean:.4g}" if mean is not None else "")
               + (f"; overlap with the longest {report['chosen']}: {longest['fraction']:.0%}"
                  if longest["fraction"] is not None else "")
               + f"; unselected -> {paths['unselected']}; report -> {paths['report']}")
    if report["chosen"] == 0:
        raise CurateError(f"no row was chosen (reasons in {paths['report']})")
