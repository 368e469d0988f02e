"""Fixtures shared by the rating_models tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import BertConfig, BertModel, BertTokenizerFast

from rating_models.experts.runtime import CACHE_ENV

# Enough words for the toy data sets: safe ones, explicit ones, and filler for long prompts.
_SENTENCES = [
    "a cat and a dog under a tree",
    "a dog in the park near a tree",
    "the cat sleeps on the tree",
    "portrait of a woman, oil painting, detailed",
    "landscape with mountains and a river at sunset",
    "a red car on a street at night",
    "cute puppy playing in the garden",
    "nude woman, naked, explicit",
    "naked man, explicit, nude",
    "explicit nude photo, nsfw",
    "nsfw, nude, lowres, bad anatomy, blurry",
    "worst quality, low quality, watermark, text",
    "masterpiece, best quality, highly detailed, 4k",
    "tags: cat, dog, tree, outdoors, sky, grass",
    "tags: nude, nipples, breasts, explicit",
    "a castle in the clouds, fantasy art, digital painting",
    "blurry, ugly, deformed hands, extra fingers",
    "city skyline, rain, neon lights, cyberpunk",
    "a bowl of fruit on a table, still life",
    "an astronaut riding a horse on the moon",
    "word " * 20,
] * 3


@pytest.fixture(scope="session", autouse=True)
def runtime_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Exported ONNX graphs go to a temporary folder, not the user's cache."""
    directory = tmp_path_factory.mktemp("runtime_cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CACHE_ENV, str(directory))
        yield directory


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A tiny random BERT with its own WordPiece vocabulary, saved like a hub checkpoint.

    Built on the fly so that no test downloads or loads real weights.
    """
    directory: Path = tmp_path_factory.mktemp("tiny_bert")
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # The vocabulary is the sentences' words and their characters (alone and as "##" word
    # pieces), numbered in sorted order: `WordPieceTrainer` picks and numbers its pieces
    # differently from run to run, which gave the tests another model each time.
    words = {
        word
        for sentence in _SENTENCES
        for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(sentence))
    }
    chars = sorted({c for word in words for c in word} | set("abcdefghijklmnopqrstuvwxyz"))
    pieces = [*specials, *sorted(words - set(chars)), *chars, *(f"##{c}" for c in chars)]
    wordpiece = Tokenizer(
        models.WordPiece({piece: i for i, piece in enumerate(pieces)}, unk_token="[UNK]")
    )
    wordpiece.normalizer = normalizer
    wordpiece.pre_tokenizer = pre_tokenizer
    tokenizer = BertTokenizerFast(tokenizer_object=wordpiece)
    tokenizer.save_pretrained(directory)

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    return str(directory)
