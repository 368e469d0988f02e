"""LSTM over a word-level tokenizer: the baseline text expert.

Words come from the cleaned prompt; the vocabulary is built from the training split only, so
the test split never leaks into it. A sequence reads
`<start> prompt words <end>` and, when the item has a negative prompt,
`<neg> negative words <end>` after it: the negative prompt is a segment of its own.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

from rating_models.examples import Example, rated
from rating_models.experts.base import Expert, ExpertError, ExpertOutput
from rating_models.ratings import NUM_CLASSES
from rating_models.text import negative_segment, prompt_segment
from rating_models.training import (
    class_weights,
    downsample,
    pick_device,
    seed_everything,
    train_with_early_stopping,
)

PAD, UNK, START, END, NEG = "<pad>", "<unk>", "<start>", "<end>", "<neg>"
SPECIALS = (PAD, UNK, START, END, NEG)
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


class WordTokenizer:
    """Lower-cased words; anything outside the training vocabulary is `<unk>`."""

    def __init__(self, words: Sequence[str]) -> None:
        self.words = list(words)
        self.ids = {word: i for i, word in enumerate(self.words)}
        if tuple(self.words[: len(SPECIALS)]) != SPECIALS:
            raise ExpertError("word vocabulary must start with the special tokens")

    @classmethod
    def build(cls, texts: Sequence[str], *, min_count: int, max_size: int) -> WordTokenizer:
        counts = Counter(word for text in texts for word in cls.split(text))
        common = [w for w, c in counts.most_common(max_size) if c >= min_count]
        return cls([*SPECIALS, *common])

    @staticmethod
    def split(text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def encode(self, prompt: str, negative: str, *, max_length: int) -> list[int]:
        unk = self.ids[UNK]
        ids = [self.ids[START], *(self.ids.get(w, unk) for w in self.split(prompt))]
        ids = [*ids[: max_length - 1], self.ids[END]]
        if negative:
            neg = [self.ids[NEG], *(self.ids.get(w, unk) for w in self.split(negative))]
            room = max(0, max_length - len(ids) - 1)
            ids += [*neg[:room], self.ids[END]] if room else []
        return ids

    def __len__(self) -> int:
        return len(self.words)


@dataclass
class LSTMConfig:
    embedding_size: int = 128
    hidden_size: int = 128
    dropout: float = 0.3
    min_word_count: int = 2
    max_vocabulary: int = 30000
    max_length: int = 160
    with_tags: bool = False
    min_tag_confidence: float = 0.35
    epochs: int = 20
    patience: int = 3
    batch_size: int = 64
    lr: float = 2e-3
    class_weighting: str = "balanced"
    downsample: float | None = None
    seed: int = 1234
    device: str = "auto"


class LSTMClassifier(nn.Module):
    def __init__(self, vocabulary_size: int, config: LSTMConfig) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, config.embedding_size, padding_idx=0)
        self.lstm = nn.LSTM(
            config.embedding_size, config.hidden_size, batch_first=True, bidirectional=True
        )
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(2 * config.hidden_size, NUM_CLASSES)

    def features(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids)  # (B, T, E)
        packed = nn.utils.rnn.pack_padded_sequence(
            x, lengths.cpu(), batch_first=True, enforce_sorted=False
        )
        out, _ = self.lstm(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)  # (B, T', 2H)
        mask = (ids[:, : out.size(1)] != 0).unsqueeze(-1)  # (B, T', 1)
        # Max-pool over time: one explicit word anywhere in a long prompt must count.
        return out.masked_fill(~mask, float("-inf")).max(dim=1).values  # (B, 2H)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(ids, lengths)))  # (B, 5)


class LSTMExpert(Expert):
    kind = "lstm"
    Config = LSTMConfig
    reads_negative_prompt = True

    def __init__(self, name: str, config: LSTMConfig | None = None) -> None:
        super().__init__(name, config)
        self.tokenizer: WordTokenizer | None = None
        self.model: LSTMClassifier | None = None
        self.device = pick_device(self.config.device)

    @property
    def modality(self) -> str:  # type: ignore[override]
        return "tags" if self.config.with_tags else "prompt"

    @property
    def feature_size(self) -> int:
        return 2 * self.config.hidden_size

    def describe(self) -> dict[str, Any]:
        vocabulary = len(self.tokenizer) if self.tokenizer else 0
        return {**super().describe(), "vocabulary_size": vocabulary}

    def _segments(self, example: Example) -> tuple[str, str]:
        prompt = prompt_segment(
            example, with_tags=self.config.with_tags, min_confidence=self.config.min_tag_confidence
        )
        return prompt, negative_segment(example)

    def _encode(self, examples: Sequence[Example]) -> list[list[int]]:
        assert self.tokenizer is not None
        return [
            self.tokenizer.encode(*self._segments(e), max_length=self.config.max_length)
            for e in examples
        ]

    def _batches(
        self, sequences: list[list[int]], order: np.ndarray, labels: np.ndarray | None = None
    ) -> Iterator[tuple[torch.Tensor, ...]]:
        for start in range(0, len(order), self.config.batch_size):
            rows = order[start : start + self.config.batch_size]
            lengths = torch.tensor([len(sequences[i]) for i in rows])
            ids = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long)
            for j, i in enumerate(rows):
                ids[j, : len(sequences[i])] = torch.tensor(sequences[i])
            batch = (ids.to(self.device), lengths)
            if labels is not None:
                batch = (*batch, torch.as_tensor(labels[rows]).to(self.device))
            yield batch

    def fit(
        self, train: Sequence[Example], val: Sequence[Example], *, progress: bool = False
    ) -> dict[str, Any]:
        seed_everything(self.config.seed)
        train, val = rated(train), rated(val)
        if not train or not val:
            raise ExpertError(f"expert {self.name!r}: needs rated training and validation items")
        self.tokenizer = WordTokenizer.build(
            [self._segments(e)[0] for e in train],
            min_count=self.config.min_word_count,
            max_size=self.config.max_vocabulary,
        )
        y_train = np.array([e.rating.index for e in train])
        y_val = np.array([e.rating.index for e in val])
        keep = (
            downsample(y_train, ratio=self.config.downsample, seed=self.config.seed)
            if self.config.downsample
            else np.arange(len(train))
        )
        x_train, x_val = self._encode(train), self._encode(val)
        self.model = LSTMClassifier(len(self.tokenizer), self.config).to(self.device)
        weights = class_weights(y_train[keep], self.config.class_weighting).to(self.device)
        rng = np.random.default_rng(self.config.seed)

        def loss_fn(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            ids, lengths, labels = batch
            return F.cross_entropy(model(ids, lengths), labels, weight=weights)

        result = train_with_early_stopping(
            self.model,
            train_batches=lambda epoch: self._batches(x_train, rng.permutation(keep), y_train),
            val_batches=lambda: self._batches(x_val, np.arange(len(val)), y_val),
            loss_fn=loss_fn,
            optimizer=torch.optim.Adam(self.model.parameters(), lr=self.config.lr),
            epochs=self.config.epochs,
            patience=self.config.patience,
            progress=progress,
            desc=f"{self.name} (lstm)",
        )
        self.model.eval()
        return {
            "n_train": len(keep),
            "vocabulary_size": len(self.tokenizer),
            "epochs_run": result.epochs_run,
            "best_epoch": result.best_epoch,
            "best_val_loss": round(result.best_val_loss, 5),
        }

    @torch.inference_mode()
    def _predict(self, examples: Sequence[Example]) -> ExpertOutput:
        if self.model is None:
            raise ExpertError(f"expert {self.name!r} is not trained")
        output = ExpertOutput.empty(len(examples), self.feature_size)
        rows = np.array(
            [i for i, e in enumerate(examples) if not (self.config.with_tags and e.tags is None)],
            dtype=np.int64,
        )
        if len(rows) == 0:
            return output
        self.model.eval()
        sequences = self._encode([examples[i] for i in rows])
        # Sorting by length keeps padding, and so wasted work, small in each batch.
        order = np.argsort([len(s) for s in sequences], kind="stable")
        for start, (ids, lengths) in zip(
            range(0, len(order), self.config.batch_size),
            self._batches(sequences, order),
            strict=True,
        ):
            target = rows[order[start : start + self.config.batch_size]]
            features = self.model.features(ids, lengths)  # (B, 2H)
            probs = F.softmax(self.model.classifier(features), dim=-1)  # (B, 5)
            output.features[target] = features.float().cpu().numpy()
            output.probs[target] = probs.float().cpu().numpy()
        output.abstain[rows] = False
        return output

    def _save_state(self, directory: Path) -> None:
        if self.model is None or self.tokenizer is None:
            raise ExpertError(f"expert {self.name!r} is not trained")
        (directory / "vocabulary.json").write_text(json.dumps(self.tokenizer.words))
        save_file(
            {k: v.contiguous().cpu() for k, v in self.model.state_dict().items()},
            directory / "model.safetensors",
        )

    def _load_state(self, directory: Path) -> None:
        self.tokenizer = WordTokenizer(json.loads((directory / "vocabulary.json").read_text()))
        self.model = LSTMClassifier(len(self.tokenizer), self.config)
        self.model.load_state_dict(load_file(directory / "model.safetensors"))
        self.model.to(self.device).eval()
