"""Tiny models and a tokenizer built on the spot from a dataset's own texts: nothing is downloaded."""

from __future__ import annotations

import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers, trainers


def tiny_tokenizer(texts, vocab_size: int = 2000) -> transformers.PreTrainedTokenizerFast:
    """A word-level tokenizer trained on ``texts``, with [PAD] and [UNK], as a Hugging Face fast tokenizer."""
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(
        list(texts), trainers.WordLevelTrainer(vocab_size=vocab_size, special_tokens=["[PAD]", "[UNK]"])
    )
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")


def tiny_bert(vocab_size: int, num_labels: int, seed: int = 0) -> transformers.BertForSequenceClassification:
    """A one-layer BERT classifier from a config (random weights, nothing downloaded)."""
    torch.manual_seed(seed)
    config = transformers.BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=num_labels,
    )
    return transformers.BertForSequenceClassification(config)
