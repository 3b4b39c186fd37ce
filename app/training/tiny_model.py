"""A tiny, randomly initialised Llama model with its own tokenizer, for the demo and the tests.

`build_tiny_model` writes an ordinary Hugging Face model directory, so every other module loads it
with `AutoTokenizer.from_pretrained` and `AutoModelForCausalLM.from_pretrained`, as it would a real
model. Nothing is downloaded.
"""

from collections.abc import Iterable
from pathlib import Path

BOS_TOKEN = "<s>"
EOS_TOKEN = "</s>"
PAD_TOKEN = "<pad>"
UNK_TOKEN = "<unk>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# Each turn is "<|role|>\n{content}\n". The assistant's content and the EOS after it sit between
# {% generation %} markers, so they are the only tokens in the loss mask. Newlines are written as
# {{ '\n' }} because transformers 5 drops a newline that directly follows a {% %} tag.
TINY_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>' + '\n' }}"
    "{% generation %}{{ message['content'] }}{{ eos_token }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|' + message['role'] + '|>' + '\n' + message['content'] + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' + '\n' }}{% endif %}"
)

# Always added to the caller's corpus, so that the vocabulary has merges for English and Chinese text.
_SEED_CORPUS = (
    "The quick brown fox jumps over the lazy dog.",
    "Please answer the question briefly and clearly.",
    "Here is a short summary of the main points.",
    "今天天气很好，我们去公园散步吧。",
    "请用简洁的语言回答下面的问题。",
    "这是一个关于机器学习的简单例子。",
)


def build_tiny_model(
    path: str | Path,
    corpus: Iterable[str],
    *,
    vocab_size: int = 2000,
    hidden_size: int = 64,
    num_hidden_layers: int = 2,
    max_position_embeddings: int = 2048,
    seed: int = 0,
) -> Path:
    """Train a byte-level BPE tokenizer on `corpus`, build a tiny Llama model and save both to `path`.

    The tokenizer has BOS, EOS, PAD and UNK tokens, one special token per chat role and
    `TINY_CHAT_TEMPLATE`. `vocab_size` is an upper bound: a small corpus yields fewer merges.
    Returns `path` as a Path.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    special_tokens = [PAD_TOKEN, BOS_TOKEN, EOS_TOKEN, UNK_TOKEN, *ROLE_TOKENS]
    bpe = Tokenizer(models.BPE(unk_token=UNK_TOKEN))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_with_seed_corpus(corpus), trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=BOS_TOKEN,
        eos_token=EOS_TOKEN,
        pad_token=PAD_TOKEN,
        unk_token=UNK_TOKEN,
    )
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    tokenizer.save_pretrained(path)

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model.save_pretrained(path)

    return path


def _with_seed_corpus(corpus: Iterable[str]) -> Iterable[str]:
    yield from _SEED_CORPUS
    for text in corpus:
        if text:
            yield text
