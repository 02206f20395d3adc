"""`curate train`: SFT of a chat model on curated records (LoRA, QLoRA, full, HFT; TRL SFTTrainer); see sft/train.py."""

from __future__ import annotations

import click


@click.command("train", short_help="Fine-tune a chat model on curated records (LoRA by default).")
@click.argument("data")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run folder, e.g. runs/NAME.")
@click.option("--model", help="Base model: 'bundled' (SmolLM2-135M-Instruct), a local folder or a hub id.")
@click.option("--method", type=click.Choice(["lora", "qlora", "full", "hft"]),
              help="lora (default; nf4 base on GPU, 16-bit on CPU), qlora (nf4 base), full, hft (Half Fine-Tuning).")
@click.option("--config", "recipe", help="Recipe YAML, or a shipped one by name: default, quick, lora16, tutorial.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any recipe field, e.g. sft.learning_rate=1e-4, lora.r=8, hft.round_steps=20.")
@click.option("--eval-split", type=float, help="Fraction held out for eval loss [default: 0.05].")
@click.option("--eval-file", help="Curated records to evaluate on instead.")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--epochs", type=float, help="Number of epochs [default: 1].")
@click.option("--max-length", type=int, help="Tokens per sample (and per packed row) [default: 1024].")
@click.option("--packing/--no-packing", default=None, help="Pack samples (isolated from each other) [default: on].")
@click.option("--strict", is_flag=True, default=None,
              help="Fail on records with roles out of order or no trainable token left, instead of dropping them.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT.")
@click.option("--overwrite", is_flag=True, help="Delete an existing run in OUT first (otherwise it is an error).")
@click.option("--merge", is_flag=True, help="Also write OUT/merged: the adapter merged into a bf16 base.")
def command(data, out, model, method, recipe, assignments, eval_split, eval_file, max_steps, epochs, max_length,
            packing, strict, resume, overwrite, merge) -> None:
    """Train on DATA (curated records, or anything `curate import` reads); loss on assistant turns only.
    The run is sized to this machine's memory before the first step. Ctrl-C saves a checkpoint."""
    from curate.config import given, parse_set
    from curate.config import merge as merge_layers
    from sft.train import train

    top = given({"model": model, "method": method, "eval_split": eval_split, "eval_file": eval_file,
                 "strict": strict})
    sft = given({"max_steps": max_steps, "num_train_epochs": epochs, "max_length": max_length, "packing": packing})
    overrides = merge_layers(parse_set(list(assignments)), {**top, **({"sft": sft} if sft else {})})
    result = train(data, out, recipe, overrides, resume=resume, merge=merge, overwrite=overwrite,
                   say=lambda line: click.echo(line, err=True))
    m = result.metrics
    what = "adapter" if (result.out / "adapter_config.json").exists() else "model"
    click.echo(f"trained {result.steps} steps on {m['tokens_seen']:,} tokens ({m['tokens_per_second']:,.0f} tok/s); "
               f"eval loss {m['final_eval_loss']}; {what} in {result.out}")
