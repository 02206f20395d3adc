"""`curate compare`: arms x sizes x seeds of select + train + eval, with paired CIs (the LIMA question); see sft/compare.py."""

from __future__ import annotations

import click


def _ints(value: str, flag: str) -> list[int]:
    from curate.errors import CurateError

    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise CurateError(f"{flag}: expected comma-separated integers, got {value!r}") from None


@click.command("compare", short_help="Does curated data train a better model? Arms x sizes x seeds, with CIs.")
@click.argument("pool", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Grid folder, e.g. compare/NAME.")
@click.option("--by", help="Score (a `scores` field) that orders the quality and bottom arms.")
@click.option("--sizes", default="128,256,512", show_default=True, help="Subset sizes (rows), comma-separated.")
@click.option("--arms", default="quality,random", show_default=True,
              help="Comma-separated: quality, random, longest, all, bottom.")
@click.option("--seeds", default="1", show_default=True, help="Training (and random-arm) seeds, comma-separated.")
@click.option("--budget", default="fixed-steps", show_default=True,
              type=click.Choice(["fixed-steps", "fixed-tokens", "fixed-epochs"]), help="What every cell gets equal.")
@click.option("--eval", "eval_path", type=click.Path(dir_okay=False),
              help="Eval records with references [default: a held-out slice of the pool, stratified by --by].")
@click.option("--eval-size", type=int, default=100, show_default=True, help="Size of the held-out slice.")
@click.option("--model", help="Base model (default: the recipe's, the bundled SmolLM2-135M-Instruct).")
@click.option("--config", "recipe", default="demo", show_default=True, help="Training recipe of every cell.")
@click.option("--max-steps", type=int, help="Optimizer steps per cell (fixed-steps, fixed-tokens).")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE", help="Any training field, as in `curate train`.")
@click.option("--generate", is_flag=True, help="Also generate answers per cell (exact match, health): slower.")
@click.option("--max-new-tokens", type=int, default=128, show_default=True, help="With --generate.")
@click.option("--resamples", type=int, default=1000, show_default=True, help="Bootstrap resamples per CI.")
def command(pool, out, by, sizes, arms, seeds, budget, eval_path, eval_size, model, recipe, max_steps, assignments,
            generate, max_new_tokens, resamples) -> None:
    """Train on nested subsets of POOL per arm and size, evaluate each on a frozen eval set, and say what holds."""
    from sft.compare import run_compare
    from sft.comparison.plan import CompareConfig
    from sft.config import parse_set

    overrides = parse_set(list(assignments))
    if max_steps is not None:
        overrides.setdefault("sft", {})["max_steps"] = max_steps
    config = CompareConfig(pool=pool, out=out, by=by, sizes=_ints(sizes, "--sizes"),
                           arms=[a.strip() for a in arms.split(",") if a.strip()], seeds=_ints(seeds, "--seeds"),
                           budget=budget, eval=eval_path, eval_size=eval_size, recipe=recipe, overrides=overrides,
                           model=model, generate=generate, max_new_tokens=max_new_tokens, resamples=resamples)
    results = run_compare(config, say=lambda line: click.echo(line, err=True))
    click.echo(results["conclusion"])
    click.echo(f"wrote {out}/results.json, results.csv, report.md and plots")
