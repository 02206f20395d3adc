"""Tiny real language-model parts shared by the sft, scoring and eval tests (no downloads).

A byte-level BPE tokenizer trained here with a ChatML template, a 2-layer random Llama built from
a config, and small multi-turn records whose words the tokenizer knows.
"""

from __future__ import annotations

from pathlib import Path

from curate.records import make_record

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "the", "dog", "ran", "to", "the", "park", "what", "is", "two", "plus", "three", "five", "name", "a", "color", "red", "blue", "green", "please", "answer", "briefly", "yes", "no", "hello", "world", "thanks", "one", "two", "three", "four", "six", "seven", "eight", "nine", "ten", "sum", "of", "numbers", "is", "the", "answer"]


def build_tokenizer(padding_side: str = "right"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<unk>", "<|im_start|>", "<|im_end|>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    corpus = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(12)) for i in range(200)]
    tok.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="<|im_end|>",
                                   bos_token="<|im_start|>", pad_token="<pad>", padding_side=padding_side)
    fast.chat_template = CHATML
    return fast


def build_model(tokenizer, hidden: int = 32, kv_heads: int = 2, tie_word_embeddings: bool = True):
    """A 2-layer random Llama (seeded) sized to ``tokenizer``."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=kv_heads,
                         max_position_embeddings=512,
                         eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                         tie_word_embeddings=tie_word_embeddings)
    return LlamaForCausalLM(config)


def build_model_dir(path: Path, tokenizer, hidden: int = 32, kv_heads: int = 2) -> Path:
    """The tiny model and its tokenizer saved as a normal model folder."""
    build_model(tokenizer, hidden, kv_heads).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def make_records(count: int, multi_turn_every: int = 3) -> list[dict]:
    records = []
    for i in range(count):
        a, b = i % 10, (i * 3) % 10
        question = f"what is {WORDS[a]} plus {WORDS[b]} please answer"
        answer = " ".join(WORDS[(i + j) % len(WORDS)] for j in range(4 + i % 9))
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        if multi_turn_every and i % multi_turn_every == 0:
            messages += [{"role": "user", "content": "thanks name a color"},
                         {"role": "assistant", "content": WORDS[(i + 5) % len(WORDS)]}]
        records.append(make_record(messages, meta={"source": "test", "n": i}))
    return records
