"""`curate eval`: trained runs (and the base model) on a frozen eval set, every metric with a 95% CI; see sft/eval.py."""

from __future__ import annotations

import click


@click.command("eval", short_help="Evaluate trained runs (and the base model) on a frozen eval set.")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("--eval", "eval_path", required=True, type=click.Path(dir_okay=False),
              help="Curate records with reference answers (the last assistant turn of each).")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Output folder, e.g. eval/NAME.")
@click.option("--base", is_flag=True, help="Also score the untrained base model of the first run.")
@click.option("--generate/--no-generate", default=True, show_default=True,
              help="Generate answers (health, exact match, judging); --no-generate scores NLL only.")
@click.option("--max-new-tokens", type=int, default=256, show_default=True, help="Cap on each generated answer.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Examples per forward/generate batch.")
@click.option("--temperature", type=float, default=0.0, show_default=True, help="0 = greedy (deterministic).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of sampling and of the bootstrap.")
@click.option("--resamples", type=int, default=1000, show_default=True, help="Bootstrap resamples per CI.")
@click.option("--judge", help="Judge engine (any engine of `curate generate`: cpu, llamacpp, transformers, openai, "
              "vllm); judges each run against the base (or the first run), both orders.")
@click.option("--judge-model", help="The judge's model (default: the engine's default, the bundled model locally).")
@click.option("--base-url", help="Server URL for --judge openai.")
@click.option("--lm-eval", "lm_eval", metavar="TASK", help="Hand the runs to lm-evaluation-harness (optional extra).")
def command(runs, eval_path, out, base, generate, max_new_tokens, batch_size, temperature, seed, resamples, judge,
            judge_model, base_url, lm_eval) -> None:
    """Evaluate RUNS (folders written by `curate train`) on EVAL; writes eval.json, answers.jsonl, judgments.jsonl."""
    from curate.errors import CurateError
    from sft.eval import EvalConfig, evaluate, table

    if lm_eval:
        raise CurateError("--lm-eval is not available: lm-evaluation-harness is not installed here, and its tasks "
                          "fetch their data from the Hugging Face hub, which this offline setup cannot reach; "
                          "use --eval with a local records file instead")
    if base_url and judge != "openai":
        raise CurateError("--base-url applies to --judge openai only")
    options = {"base_url": base_url} if base_url else {}
    config = EvalConfig(list(runs), eval_path, out, base=base, generate=generate, max_new_tokens=max_new_tokens,
                        batch_size=batch_size, temperature=temperature, seed=seed, resamples=resamples, judge=judge,
                        judge_model=judge_model, judge_options=options)
    result = evaluate(config, say=lambda line: click.echo(line, err=True))
    click.echo(table(result))
    click.echo(f"wrote {out}/eval.json")
