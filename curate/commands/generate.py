"""`curate generate`: Self-Instruct (or Alpaca) with a teacher on vLLM, any OpenAI-compatible server, or the CPU."""

from __future__ import annotations

import click


@click.command("generate", short_help="Generate instruction data with Self-Instruct from seed tasks.")
@click.option("--seeds", type=click.Path(), help="Seed file or folder of .jsonl files [default: the bundled seed tasks].")
@click.option("--out", "-o", default="generated.jsonl", show_default=True, type=click.Path(dir_okay=False),
              help="Records to append to; errors.jsonl, rejected_candidates.jsonl, manifest.json go beside it.")
@click.option("--preset", type=click.Choice(["self-instruct", "alpaca"]), help="Algorithm preset [default: self-instruct].")
@click.option("--engine", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "llamacpp", "transformers", "openai", "vllm"]),
              help="auto: vLLM with a GPU, else the CPU default (llama.cpp on the bundled model).")
@click.option("--teacher", "--model", "teacher", help="Model: name on the server, HF id/folder (vllm), GGUF (cpu).")
@click.option("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1 [env OPENAI_BASE_URL].")
@click.option("--num-instructions", "-n", type=int, help="Stop at this many new instructions [default: 100].")
@click.option("--seed", type=int, help="Seed for in-context sampling and the teacher [default: 42].")
@click.option("--batch-size", "request_batch_size", type=int, help="Instruction requests per batch [default: 5].")
@click.option("--prompt-style", type=click.Choice(["auto", "chat", "completion"]), help="auto: chat for --engine openai.")
@click.option("--concurrency", type=int, help="openai: requests in flight [default: 8].")
@click.option("--rpm", "requests_per_minute", type=float, help="openai: requests-per-minute limit.")
@click.option("--timeout", type=float, help="openai: seconds per request [default: 600].")
@click.option("--max-retries", type=int, help="openai: retries on 429/5xx/timeouts [default: 6].")
@click.option("--price-in", type=float, help="Price per million input tokens, for the cost estimate.")
@click.option("--price-out", type=float, help="Price per million output tokens.")
@click.option("--max-tokens-total", type=int, help="Stop once tokens in + out reach this budget.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML of config fields.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(seeds, out, preset, engine, teacher, base_url, num_instructions, seed, request_batch_size, prompt_style,
            concurrency, requests_per_minute, timeout, max_retries, price_in, price_out, max_tokens_total,
            config_path, quiet) -> None:
    """Generate instruction-following records from SEEDS with Self-Instruct; resumable (rerun the same command)."""
    from generators.config import build_config
    from generators.run import generate_with_engine, summary_lines
    from generators.seeds import default_seeds_path

    seeds = seeds if seeds is not None else str(default_seeds_path())

    config = build_config(config_path, preset=preset, num_instructions=num_instructions, seed=seed,
                          request_batch_size=request_batch_size, prompt_style=prompt_style, price_in=price_in,
                          price_out=price_out, max_tokens_total=max_tokens_total)
    options = {"base_url": base_url, "concurrency": concurrency, "requests_per_minute": requests_per_minute,
               "timeout": timeout, "max_retries": max_retries}
    summary = generate_with_engine(engine, teacher, seeds, out, config, options, progress=not quiet)
    for line in summary_lines(summary):
        click.echo(line)
