"""`curate score`: add model-based quality scores (IFD, perplexity, length, an LLM judge) to every row."""

from __future__ import annotations

import click

# kept in step with curate.scoring.base.SCORE_NAMES by tests/scoring/test_score_cli.py; written out here so
# that `curate --help` does not import the scorers
SCORERS = ("ifd", "perplexity", "length", "judge")
# flag -> (config path, scorers it applies to)
APPLIES = {
    "model": ("lm.model", ("ifd", "perplexity")), "batch_size": ("lm.batch_size", ("ifd", "perplexity")),
    "max_length": ("lm.max_length", ("ifd", "perplexity")), "device": ("lm.device", ("ifd", "perplexity")),
    "dtype": ("lm.dtype", ("ifd", "perplexity")), "tokenizer": ("length.tokenizer", ("length",)),
    "engine": ("judge.engine", ("judge",)), "judge_model": ("judge.model", ("judge",)),
    "base_url": ("judge.options.base_url", ("judge",)), "rubric": ("judge.rubric", ("judge",)),
}


@click.command("score", short_help="Add scores.<name> to every row: ifd, perplexity, length, judge.")
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("--out", "-o", required=True, type=click.Path(dir_okay=False),
              help="Scored rows; score_errors.jsonl, score_report.json, score_config.yaml and score_cache/ go beside it.")
@click.option("--scorer", "scorers", help=f"Comma-separated: {', '.join(SCORERS)}  [default: ifd]")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, exists=True),
              help="YAML with scorers / chunk_size / lm / length / judge settings; flags override it.")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Any config field, e.g. lm.max_batch_tokens=8192")
@click.option("--model", help="ifd/perplexity: bundled, a model folder or hub id  [default: bundled]")
@click.option("--batch-size", type=int, help="ifd/perplexity: sequences per forward pass  [default: 16]")
@click.option("--max-length", type=int, help="ifd/perplexity: longer rows go to score_errors.jsonl  [default: 2048]")
@click.option("--device", help="ifd/perplexity: auto | cpu | cuda[:N]  [default: auto]")
@click.option("--dtype", type=click.Choice(["float32", "bfloat16", "float16"]), help="ifd/perplexity  [default: float32]")
@click.option("--tokenizer", help="length: bundled, a tokenizer folder or hub id  [default: bundled]")
@click.option("--engine", help="judge: cpu | llamacpp | transformers | openai | vllm | auto  [default: cpu]")
@click.option("--judge-model", help="judge: the judge model  [default: bundled for local engines]")
@click.option("--base-url", help="judge: an OpenAI-compatible server (implies --engine openai)")
@click.option("--rubric", type=click.Path(dir_okay=False, exists=True), help="judge: prompt file with {conversation}")
@click.option("--chunk-size", type=int, help="Rows per cached chunk  [default: 64]")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where the scorers run: this process, or a Ray cluster, one model per actor (curate[ray]).")
@click.option("--address", "ray_address", help="--executor ray: the cluster (auto | ray://HOST:PORT)  "
              "[default: start a local one]")
def command(source: str, out: str, scorers: str | None, config_path: str | None, sets: tuple[str, ...],
            chunk_size: int | None, no_progress: bool, executor: str, ray_address: str | None,
            **flags: object) -> None:
    """Score every row of SOURCE (curate records) into OUT, adding scores.<name>; no row is dropped.

    Rows a scorer cannot score go to score_errors.jsonl with the reason. Rerunning resumes from
    score_cache/ (kill -9 safe): only unscored rows are computed, and the output is identical.
    """
    from curate.scoring.run import load_config, run_score

    cfg = load_config(config_path, scorers, chunk_size, flags, sets, APPLIES)
    outcome = run_score(source, out, cfg, progress=not no_progress, executor=executor, address=ray_address)
    report = outcome.report
    for name, dist in report["distributions"].items():
        summary = dist["summary"]
        if summary:
            click.echo(f"{name:>10}: mean {summary['mean']:.4g}  median {summary['median']:.4g}  "
                       f"min {summary['min']:.4g}  max {summary['max']:.4g}", err=True)
    click.echo(f"scored {report['scored']} of {report['in']} rows -> {out}; errors: {report['errors']} -> "
               f"{outcome.paths.errors}; report -> {outcome.paths.report}")
    if report["scored"] == 0:
        from curate.errors import CurateError

        raise CurateError(f"no row could be scored; the reasons are in {outcome.paths.errors}")
