"""The transformers engine on a tiny random Llama built from a config (no download): batching with
left padding, stop strings, finish reasons, token counts, chat template, reproducible greedy decoding."""

from __future__ import annotations

import pytest

from generators.engines.base import Request

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    words = ["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(61)] + ["\n", "the", "list", "three", "name", "fruits"]
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>",
                                        unk_token="<unk>")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(words), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         pad_token_id=0, eos_token_id=1, bos_token_id=1)
    folder = tmp_path_factory.mktemp("tiny")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_batched_generate_with_padding_stops_and_counts(tiny_model_dir):
    from generators.engines.transformers_local import TransformersEngine

    engine = TransformersEngine(model=tiny_model_dir, batch_size=4)
    requests = [
        Request("the list", max_tokens=6, temperature=0.0, chat=False, id="short"),
        Request("name three fruits the list the list", max_tokens=6, temperature=0.0, chat=False, id="long"),
        Request("name fruits", max_tokens=5, temperature=0.8, top_p=0.9, seed=3, id="chat"),
    ]
    results = engine.generate(requests)
    assert [r.request.id for r in results] == ["short", "long", "chat"]
    assert [r.tokens_in for r in results[:2]] == [2, 7]  # padding is not counted
    for result in results:
        completion = result.completions[0]
        assert result.ok and 0 < completion.tokens_out <= result.request.max_tokens
        assert completion.finish_reason == ("length" if completion.tokens_out == result.request.max_tokens else "stop")
    alone = engine.generate([requests[0]])[0]  # left padding does not change greedy output
    assert alone.completions[0].text == results[0].completions[0].text
    again = engine.generate([requests[2]])[0]  # the request's seed makes sampling reproducible
    assert again.completions[0].text == results[2].completions[0].text
    assert engine.describe()["ignored"] == ["presence_penalty", "frequency_penalty"]


def test_stop_strings_cut_the_text(tiny_model_dir):
    from generators.engines.transformers_local import TransformersEngine

    engine = TransformersEngine(model=tiny_model_dir)
    free = engine.generate([Request("the list", max_tokens=8, temperature=0.0, chat=False)])[0].completions[0]
    words = free.text.split()
    assert len(words) >= 3, free
    stop = words[2]
    cut = engine.generate([Request("the list", max_tokens=8, temperature=0.0, chat=False, stop=[stop])])[0]
    assert cut.ok, cut.error
    assert cut.completions[0].finish_reason == "stop"
    assert stop not in cut.completions[0].text and free.text.startswith(cut.completions[0].text.rstrip())


def test_missing_model_is_a_clear_error(tmp_path):
    from curate.errors import CurateError
    from generators.engines.transformers_local import TransformersEngine

    with pytest.raises(CurateError, match="cannot load"):
        TransformersEngine(model=str(tmp_path / "nothing-here"))
