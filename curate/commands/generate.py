"""`curate generate`: Self-Instruct (or Alpaca) with a teacher on vLLM, any OpenAI-compatible server, or the CPU.

Parses flags into the generation config (:func:`generators.config.build_config`: preset <- YAML <- flags);
engine options go to ``engine_options`` and are checked against the chosen engine before
anything loads. ``--dry-run`` prints what the run would send and cost, and sends nothing.
"""

from __future__ import annotations

import click

ENGINE_FLAGS = ("base_url", "api_key", "concurrency", "requests_per_minute", "timeout", "max_retries",
                "gpu_memory_utilization", "max_model_len", "tensor_parallel_size", "batch_invariant")


def engine_option(*names: str, **kw):
    return click.option(*names, default=None, **kw)


@click.command("generate", short_help="Generate instruction data with Self-Instruct from seed tasks.")
@click.option("--seeds", type=click.Path(), help="Seed file or folder of .jsonl files [default: the bundled seed tasks].")
@click.option("--out", "-o", default="generated.jsonl", show_default=True, type=click.Path(dir_okay=False),
              help="Records to append to; errors.jsonl, rejected_candidates.jsonl, batches.jsonl, manifest.json beside it.")
@click.option("--preset", type=click.Choice(["self-instruct", "alpaca"]), help="Algorithm preset [default: self-instruct].")
@click.option("--engine", type=click.Choice(["auto", "cpu", "llamacpp", "transformers", "openai", "vllm"]),
              help="auto: openai with --base-url, else vLLM with a GPU, else cpu (llama.cpp on the bundled model).")
@click.option("--teacher", "--model", "teacher", help="Model: name on the server, HF id/folder (vllm), GGUF (cpu).")
@engine_option("--base-url", help="openai: endpoint, e.g. http://127.0.0.1:8000/v1 (implies --engine openai).")
@engine_option("--api-key", help="openai: API key [env OPENAI_API_KEY]; never written to disk.")
@engine_option("--concurrency", type=int, help="openai: requests in flight [default: 8].")
@engine_option("--rpm", "requests_per_minute", type=float, help="openai: requests-per-minute limit.")
@engine_option("--timeout", type=float, help="openai: seconds per request [default: 600].")
@engine_option("--max-retries", type=int, help="openai: retries on 429/5xx/timeouts [default: 6].")
@engine_option("--gpu-memory-utilization", type=float, help="vllm: share of GPU memory [default: 0.9].")
@engine_option("--max-model-len", type=int, help="vllm: context window [default: the model's].")
@engine_option("--tensor-parallel-size", type=int, help="vllm: GPUs to shard over [default: 1].")
@click.option("--batch-invariant", is_flag=True, default=None,
              help="vllm: VLLM_BATCH_INVARIANT=1, outputs independent of batching (beta, slower).")
@click.option("--engine-option", "engine_set", multiple=True, metavar="KEY=VALUE",
              help="Any other option of the engine, e.g. n_ctx=8192 (llamacpp), dtype=bfloat16 (vllm).")
@click.option("--num-instructions", "-n", type=int, help="Stop at this many new instructions [default: 100].")
@click.option("--seed", type=int, help="Seed for in-context sampling and the teacher [default: 42].")
@click.option("--batch-size", "request_batch_size", type=int, help="Instruction requests per batch [default: 5].")
@click.option("--prompt-style", type=click.Choice(["auto", "chat", "completion"]),
              help="auto: completion where the engine supports it (local engines), else chat.")
@click.option("--row-format", type=click.Choice(["chat", "self-instruct"]),
              help="Training rows: chat (instruction, blank line, input) or self-instruct (published templates) [default: chat].")
@click.option("--price-in", type=float, help="Price per million input tokens, for the cost estimate.")
@click.option("--price-out", type=float, help="Price per million output tokens.")
@click.option("--max-tokens-total", type=int, help="Stop once tokens in + out reach this budget.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="YAML of config fields.")
@click.option("--dry-run", is_flag=True, help="Render the first prompts, project requests, tokens and cost; send nothing.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def command(seeds, out, preset, engine, teacher, engine_set, num_instructions, seed, request_batch_size,
            prompt_style, row_format, price_in, price_out, max_tokens_total, config_path, dry_run, quiet, **engine_flags) -> None:
    """Generate instruction-following records from SEEDS with Self-Instruct; resumable (rerun the same command).

    Exit status: 0 complete (or the --max-tokens-total budget reached), 1 stalled (nothing new
    accepted for a while; rows so far kept), 2 failed (bad input, or the teacher refused or
    failed every request: the cause and what to do are printed).
    """
    from curate.config import given, parse_set
    from generators.config import build_config
    from generators.run import generate_with_engine, summary_lines
    from generators.seeds import default_seeds_path

    options = {**parse_set(engine_set), **given(engine_flags)}
    config = build_config(config_path, preset=preset, engine=engine, teacher=teacher, engine_options=options or None,
                          num_instructions=num_instructions, seed=seed, request_batch_size=request_batch_size,
                          prompt_style=prompt_style, row_format=row_format, price_in=price_in, price_out=price_out,
                          max_tokens_total=max_tokens_total)
    seeds = seeds if seeds is not None else str(default_seeds_path())
    if dry_run:
        from generators.estimate import dry_run_lines

        for line in dry_run_lines(config, seeds):
            click.echo(line)
        return
    summary = generate_with_engine(config, seeds, out, progress=not quiet)
    for line in summary_lines(summary):
        click.echo(line)
    if summary.failure():
        from curate.errors import CurateError

        raise CurateError(summary.failure())
    if summary.exit_code:
        raise SystemExit(summary.exit_code)
