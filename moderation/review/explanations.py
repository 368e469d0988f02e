"""What the review page shows of a prediction's stored explanation (`rating_models.explain`):
the prompt cut into plain and highlighted pieces, the tag list with the tags that count, and
a short list per expert that rates above PG. Read from the prediction's JSON; nothing is
computed by a model.

The prompt is cut here, in Python, and each piece rendered by the template with autoescaping:
user text never goes through `mark_safe`. A word or tag is highlighted when an expert that
rates above PG names it, in the colour of the highest such rating: what pushed the rating up.
"""

from __future__ import annotations

from dataclasses import dataclass

from moderation.inference.models import Prediction
from moderation.media.models import MediaItem
from moderation.review.queue import level_label
from rating_models.ratings import Rating

METHODS = {
    "rules": "tags whose rules set the level",
    "linear": "n-gram weights toward the rating",
    "occlusion": "probability lost without it",
}


@dataclass(frozen=True)
class Piece:
    """A run of the prompt; `level` is the rating it pushed toward (None: plain text)."""

    text: str
    level: int | None = None


@dataclass(frozen=True)
class TagView:
    name: str
    confidence: float
    level: int | None  # highlighted toward this rating, or None


@dataclass(frozen=True)
class Reason:
    text: str  # the word or the tag
    kind: str  # "word" or "tag"
    weight: str  # as the method measures it, ready to show


@dataclass(frozen=True)
class ExpertReasons:
    name: str
    level: int
    method: str
    reasons: list[Reason]


@dataclass(frozen=True)
class ExplanationView:
    prompt: list[Piece]
    tags: list[TagView]
    experts: list[ExpertReasons]
    skipped: list[str]  # experts whose word-level reasons were left out

    @property
    def highlights(self) -> bool:
        return any(p.level for p in self.prompt) or any(t.level for t in self.tags)


def explanation_view(*, prediction: Prediction, item: MediaItem) -> ExplanationView | None:
    """The page's view of the prediction's explanation; None when it has none."""
    stored = prediction.explanation
    if not isinstance(stored, dict) or not stored.get("experts"):
        return None
    experts = [_expert_reasons(name, said) for name, said in stored["experts"].items()]
    words, tags = _pushing_up(stored["experts"])
    return ExplanationView(
        prompt=_pieces(item.prompt, words),
        tags=[TagView(str(n), float(c), tags.get(str(n))) for n, c in item.tags or ()],
        experts=sorted(
            (e for e in experts if e.reasons and e.level > Rating.PG.level),
            key=lambda e: (-e.level, e.name),
        ),
        skipped=list(stored.get("skipped", [])),
    )


def _pushing_up(experts: dict) -> tuple[dict[tuple[int, int], tuple[str, int]], dict[str, int]]:
    """The spans of words and the tags named by experts that rate above PG, each with the
    highest rating that names it."""
    words: dict[tuple[int, int], tuple[str, int]] = {}
    tags: dict[str, int] = {}
    for said in experts.values():
        level = said.get("rating")
        if not level or level <= Rating.PG.level:
            continue
        for entry in said.get("top", []):
            if "tag" in entry:
                tags[entry["tag"]] = max(level, tags.get(entry["tag"], 0))
            for start, end in entry.get("spans", []):
                known = words.get((start, end), ("", 0))[1]
                words[start, end] = (entry.get("word", ""), max(level, known))
    return words, tags


def _pieces(prompt: str, words: dict[tuple[int, int], tuple[str, int]]) -> list[Piece]:
    """The prompt cut at the highlighted words. A span that does not hold its word in this
    prompt (a stale or hand-made explanation) is ignored; overlaps keep the higher rating."""
    levels = [0] * len(prompt)
    for (start, end), (word, level) in words.items():
        if 0 <= start < end <= len(prompt) and prompt[start:end].lower() == word:
            for i in range(start, end):
                levels[i] = max(levels[i], level)
    pieces: list[Piece] = []
    start = 0
    for i in range(1, len(prompt) + 1):
        if i == len(prompt) or levels[i] != levels[start]:
            pieces.append(Piece(prompt[start:i], levels[start] or None))
            start = i
    return pieces


def _expert_reasons(name: str, said: dict) -> ExpertReasons:
    method = said.get("method", "")
    reasons = []
    for entry in said.get("top", []):
        kind = "tag" if "tag" in entry else "word"
        reasons.append(Reason(str(entry.get(kind, "")), kind, _weight(method, entry)))
    return ExpertReasons(name, int(said.get("rating") or 0), METHODS.get(method, method), reasons)


def _weight(method: str, entry: dict) -> str:
    weight = float(entry.get("weight", 0.0))
    if method == "rules":
        via = entry.get("via")
        return f"{via} · {level_label(int(weight))}" if via else level_label(int(weight))
    if method == "occlusion":
        return f"−{100 * weight:.0f}%"
    return f"+{weight:.2f}"
