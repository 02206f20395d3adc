"""`curate train`: LoRA/QLoRA SFT of a chat model on curated records (TRL SFTTrainer); see sft/train.py."""

from __future__ import annotations

import click


@click.command("train", short_help="Train a LoRA/QLoRA adapter on curated records.")
@click.argument("data")
@click.option("--out", "-o", required=True, type=click.Path(file_okay=False), help="Run folder, e.g. runs/NAME.")
@click.option("--model", help="Base model: 'bundled' (SmolLM2-135M-Instruct), a local folder or a hub id.")
@click.option("--config", "recipe", help="Recipe YAML, or a shipped one by name: default, quick, demo, lora16, tutorial.")
@click.option("--set", "assignments", multiple=True, metavar="KEY=VALUE",
              help="Override any recipe field, e.g. sft.learning_rate=1e-4, lora.r=8, quantization=none.")
@click.option("--eval-split", type=float, help="Fraction held out for eval loss [default: 0.05].")
@click.option("--eval-file", type=click.Path(dir_okay=False), help="Curated JSONL to evaluate on instead.")
@click.option("--max-steps", type=int, help="Stop after this many optimizer steps.")
@click.option("--epochs", type=float, help="Number of epochs [default: 1].")
@click.option("--max-length", type=int, help="Tokens per sample (and per packed row) [default: 1024].")
@click.option("--packing/--no-packing", default=None, help="Pack samples (isolated from each other) [default: on].")
@click.option("--strict", is_flag=True, default=None, help="Fail instead of dropping samples left with no trainable token.")
@click.option("--resume", is_flag=True, help="Continue from the last checkpoint in OUT.")
@click.option("--overwrite", is_flag=True, help="Delete an existing run in OUT first (otherwise it is an error).")
@click.option("--merge", is_flag=True, help="Also write OUT/merged: the adapter merged into a bf16 base.")
def command(data, out, model, recipe, assignments, eval_split, eval_file, max_steps, epochs, max_length,
            packing, strict, resume, overwrite, merge) -> None:
    """Train on DATA (curated records, or anything `curate import` reads); loss on assistant turns only. Ctrl-C saves a checkpoint."""
    from sft.config import parse_set
    from sft.train import train

    overrides = parse_set(list(assignments))
    top = {"model": model, "eval_split": eval_split, "eval_file": eval_file, "strict": strict}
    sft = {"max_steps": max_steps, "num_train_epochs": epochs, "max_length": max_length, "packing": packing}
    overrides.update({k: v for k, v in top.items() if v is not None})
    overrides.setdefault("sft", {}).update({k: v for k, v in sft.items() if v is not None})
    result = train(data, out, recipe, overrides, resume=resume, merge=merge, overwrite=overwrite,
                   say=lambda line: click.echo(line, err=True))
    m = result.metrics
    click.echo(f"trained {result.steps} steps on {m['tokens_seen']:,} tokens ({m['tokens_per_second']:,.0f} tok/s); "
               f"eval loss {m['final_eval_loss']}; adapter in {result.out}")
