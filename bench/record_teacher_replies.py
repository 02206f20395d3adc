"""Record real teacher replies to the instruction-generation prompts, for the parser tests.

Renders the Self-Instruct and Alpaca instruction prompts from the bundled seeds and sends them
to the bundled SmolLM2-135M-Instruct (llama.cpp, in process), in chat form and as plain
completions, with the published sampling settings (chat form: without the "\\n\\n" stop, as
``curate generate`` sends them). Each reply is one JSON line: mode, prompt, text, finish_reason.

    .venv/bin/python bench/record_teacher_replies.py --per-mode 5 \\
        --out tests/generators/data/replies_bundled.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.records.model import bundled_gguf  # noqa: E402
from generators.config import build_config  # noqa: E402
from generators.seeds import load_seeds  # noqa: E402
from generators.self_instruct import PoolTask, SelfInstruct  # noqa: E402


def prompts(preset: str, count: int, seed: int) -> list[str]:
    config = build_config(None, preset=preset)
    algo = SelfInstruct(config, load_seeds(), {"name": "record", "model": "bundled"}, True, "record")
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        context = rng.sample(algo.seeds, config.num_prompt_instructions)
        out.append(algo.render_instruction_prompt([PoolTask(t.id, t.instruction, t.input, t.output) for t in context]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-mode", type=int, default=12)
    parser.add_argument("--out", required=True)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    from llama_cpp import Llama

    llm = Llama(str(bundled_gguf()), n_ctx=4096, n_threads=1, verbose=False, seed=args.seed)
    rows = []
    for preset, max_tokens, stops in (("self-instruct", 300, ["\n16", "16.", "16 ."]),
                                      ("alpaca", 500, ["\n20", "20."])):
        for k, prompt in enumerate(prompts(preset, args.per_mode, args.seed)):
            for style in ("chat", "completion"):
                sampling = {"max_tokens": max_tokens, "temperature": 0.7 if preset == "self-instruct" else 1.0,
                            "top_p": 0.5 if preset == "self-instruct" else 1.0, "seed": args.seed + k}
                if style == "chat":
                    reply = llm.create_chat_completion([{"role": "user", "content": prompt}], stop=stops, **sampling)
                    text = reply["choices"][0]["message"]["content"]
                else:
                    stop = ["\n\n", *stops] if preset == "self-instruct" else stops
                    reply = llm.create_completion(prompt, stop=stop, **sampling)
                    text = reply["choices"][0]["text"]
                rows.append({"source": "bundled SmolLM2-135M-Instruct (llama.cpp)", "preset": preset, "style": style,
                             "first_number": 9 if preset == "self-instruct" else 4, "prompt": prompt, "text": text,
                             "finish_reason": reply["choices"][0]["finish_reason"]})
                print(preset, style, k, reply["choices"][0]["finish_reason"], len(text), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
