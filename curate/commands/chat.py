"""`curate chat runs/NAME`: answer prompts with the trained adapter or model (same chat template as training)."""

from __future__ import annotations

from collections.abc import Iterator

import click


def terminal_prompts() -> Iterator[str]:
    """Prompts typed at the terminal until an empty line or Ctrl-D."""
    while True:
        try:
            line = click.prompt("you", default="", show_default=False, prompt_suffix="> ")
        except click.exceptions.Abort:  # Ctrl-D / Ctrl-C at the prompt ends the session
            return
        if not line.strip():
            return
        yield line.strip()


@click.command("chat", short_help="Talk to a trained run: prompts from a file or the terminal.")
@click.argument("run", type=click.Path(file_okay=False, exists=True))
@click.option("--prompts", type=click.Path(dir_okay=False), help="Prompts: .txt (one per line) or records JSONL.")
@click.option("--out", "-o", type=click.Path(dir_okay=False), help="Also write the answers as records JSONL.")
@click.option("--max-new-tokens", default=256, show_default=True)
@click.option("--temperature", default=0.0, show_default=True, help="0 = greedy.")
@click.option("--base-only", is_flag=True, help="Answer with the base model, without the adapter (to compare).")
def command(run, prompts, out, max_new_tokens, temperature, base_only) -> None:
    """Load RUN's base model + adapter (or RUN's full model) and answer prompts."""
    from curate.records import make_record
    from curate.records.jsonl import write_jsonl
    from sft.chat import chat_many, load_run, read_prompts

    loaded = load_run(run, base_only=base_only)
    questions = read_prompts(prompts) if prompts else terminal_prompts()
    rows = []
    for question, reply in chat_many(loaded, questions, max_new_tokens, temperature):
        click.echo(f"> {question}\n{reply}\n")
        rows.append(make_record([{"role": "user", "content": question}, {"role": "assistant", "content": reply}],
                                meta={"source": "curate-chat", "run": run, "base_only": base_only}))
    if out:
        write_jsonl(out, rows)
