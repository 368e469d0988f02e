"""Tag rules: the graduating-threshold system that rated media before any model.

Each moderation tag has a value; an item's score aggregates the values of its tags; each rating
has a threshold, and a score that reaches a rating's threshold graduates the item to that more
restrictive rating. Moderation tags are derived from tagger tags by rules.

Civitai's production instance is the default: moderation tags derived from WD14 tags by its
rules, value = the tag's level, aggregation = maximum, thresholds = the levels. Everything in
that sentence is data (CSV tables and settings), not code, so another platform's rules are a
configuration. A Blocked-level tag rates XXX and flags the item for a moderator.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from rating_models.examples import Example
from rating_models.experts.base import Expert, ExpertError, ExpertOutput
from rating_models.ratings import BLOCKED, Rating, parse_label
from rating_models.text import normalise_tag

PACKAGED_RULES = "civitai_wd14_to_moderation_tag_rules.csv"
PACKAGED_LEVELS = "civitai_moderation_tag_levels.csv"
FEATURE_LEVELS = (*(r.level for r in Rating), BLOCKED.level)  # 1, 2, 4, 8, 16, 32


# -- the rule language: "a + b" all, "a|b" any, "!a" absent, parentheses group -----------------


@dataclass(frozen=True)
class Term:
    """A parsed qualifier. Evaluation is fuzzy: a tag is its confidence (0 when absent),
    all-of is the minimum, any-of the maximum, not-x is 1 when x is absent."""

    op: str  # "tag", "all", "any", "not"
    tag: str = ""
    parts: tuple[Term, ...] = ()

    def value(self, present: dict[str, float]) -> float:
        if self.op == "tag":
            return present.get(self.tag, 0.0)
        if self.op == "not":
            return 0.0 if self.parts[0].value(present) > 0 else 1.0
        values = [p.value(present) for p in self.parts]
        return min(values) if self.op == "all" else max(values)

    def sources(self, present: dict[str, float]) -> set[str]:
        """The present tags that give this term its value: every part of an all-of, the
        strongest parts of an any-of, nothing for a not-x (an absence names no tag)."""
        if self.op == "tag":
            return {self.tag} if present.get(self.tag, 0.0) > 0 else set()
        if self.op == "not":
            return set()
        parts = self.parts
        if self.op == "any":
            best = self.value(present)
            parts = tuple(p for p in parts if best > 0 and p.value(present) == best)
        return set().union(*(p.sources(present) for p in parts))

    @property
    def is_veto(self) -> bool:
        """A qualifier that is only `!a`: it removes the computed tag whenever `a` is present."""
        return self.op == "not"


def parse_qualifier(text: str) -> Term:
    """Parse a rule qualifier. ` + ` (with spaces) joins required terms: `6+girls` is a tag."""
    text = text.strip()
    if not text:
        raise ExpertError("empty rule qualifier")
    parts = _split_top_level(text, " + ")
    if len(parts) > 1:
        return Term("all", parts=tuple(parse_qualifier(p) for p in parts))
    options = _split_top_level(text, "|")
    if len(options) > 1:
        return Term("any", parts=tuple(parse_qualifier(p) for p in options))
    if text.startswith("!"):
        return Term("not", parts=(parse_qualifier(text[1:]),))
    if text.startswith("(") and text.endswith(")") and _matching_paren(text) == len(text) - 1:
        return parse_qualifier(text[1:-1])
    if any(ch in text for ch in "()"):
        raise ExpertError(f"unbalanced parentheses in rule qualifier {text!r}")
    return Term("tag", tag=normalise_tag(text))


def _split_top_level(text: str, separator: str) -> list[str]:
    parts, depth, start, i = [], 0, 0, 0
    while i < len(text):
        ch = text[i]
        depth += (ch == "(") - (ch == ")")
        if depth < 0:
            raise ExpertError(f"unbalanced parentheses in rule qualifier {text!r}")
        if depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i])
            i += len(separator)
            start = i
            continue
        i += 1
    if depth != 0:
        raise ExpertError(f"unbalanced parentheses in rule qualifier {text!r}")
    parts.append(text[start:])
    return [p.strip() for p in parts]


def _matching_paren(text: str) -> int:
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "(") - (ch == ")")
        if depth == 0:
            return i
    return -1


@dataclass
class ComputedTag:
    name: str
    level: int | None
    temporary: bool
    rules: list[Term] = field(default_factory=list)
    vetoes: list[Term] = field(default_factory=list)

    def value(self, present: dict[str, float]) -> float:
        if any(v.parts[0].value(present) > 0 for v in self.vetoes):
            return 0.0
        return max((rule.value(present) for rule in self.rules), default=0.0)

    def sources(self, present: dict[str, float]) -> set[str]:
        """The present tags its strongest rules read (computed tags among them included)."""
        best = self.value(present)
        if best <= 0:
            return set()
        return set().union(*(r.sources(present) for r in self.rules if r.value(present) == best))


# -- the expert --------------------------------------------------------------------------------


@dataclass
class TagRulesConfig:
    # Rule table (computed_tag, computed_level, sources, temp, qualifier) and tag values
    # (tag, level); None means the packaged Civitai tables.
    rules: str | None = None
    tag_levels: str | None = None
    sources: list[str] = field(default_factory=lambda: ["WD14"])
    # The tagger's threshold: a tag below it is treated as absent.
    min_confidence: float = 0.35
    # Whether a tagger tag that is itself named like a moderation tag counts as one. Civitai
    # derives moderation tags only through the rules; its WD14 tag "hanging" (a sign hanging
    # on a wall) must not become the Blocked moderation tag "hanging".
    direct_tags: bool = False
    aggregation: str = "max"  # "max" or "sum" of the present moderation tags' values
    # A score at or above a rating's threshold graduates the item to at least that rating.
    thresholds: dict[str, float] = field(
        default_factory=lambda: {"PG13": 2, "R": 4, "X": 8, "XXX": 16}
    )


class TagRulesExpert(Expert):
    """Rates items from their tags by rules; needs no training."""

    kind = "tag_rules"
    modality = "tags"
    Config = TagRulesConfig

    def __init__(self, name: str, config: TagRulesConfig | None = None) -> None:
        super().__init__(name, config)
        if self.config.aggregation not in {"max", "sum"}:
            raise ExpertError(f"tag rules aggregation {self.config.aggregation!r}: max or sum")
        self.thresholds = sorted(
            ((Rating.parse(name), float(value)) for name, value in self.config.thresholds.items()),
            key=lambda pair: pair[0],
        )
        # The tables' text is kept: saving writes it into the expert's directory, so a saved
        # expert rates the same when the files its configuration named are gone or changed.
        self.rules_text = _read_table(self.config.rules, PACKAGED_RULES)
        self.levels_text = _read_table(self.config.tag_levels, PACKAGED_LEVELS)
        self._parse_tables(where_rules=self.config.rules, where_levels=self.config.tag_levels)

    def _parse_tables(self, *, where_rules: str | None, where_levels: str | None) -> None:
        self.computed = _parse_rules(
            self.rules_text, where_rules or PACKAGED_RULES, set(self.config.sources)
        )
        self.values = _parse_levels(self.levels_text, where_levels or PACKAGED_LEVELS)
        for tag in self.computed.values():
            if tag.level is not None:
                self.values.setdefault(tag.name, tag.level)

    @classmethod
    def restore(cls, name: str, config: dict[str, Any], directory: Path) -> TagRulesExpert:
        saved = {
            **config,
            "rules": str(directory / "rules.csv"),
            "tag_levels": str(directory / "levels.csv"),
        }
        expert = cls.from_config(name, saved)
        expert.config = cls.Config(**config)  # keep the configuration as it was written
        return expert

    @property
    def feature_size(self) -> int:
        return len(FEATURE_LEVELS)

    def fit(
        self, train: Sequence[Example], val: Sequence[Example], *, progress: bool = False
    ) -> dict[str, Any]:
        return {"trained": False, "reason": "rules are configuration, not learned"}

    def learns_from(self, train: Sequence[Example]) -> bool:
        return False

    def moderation_tags(self, example: Example) -> dict[str, float]:
        """The item's moderation tags with confidences, derived from its tagger tags."""
        return self._moderation(*self._run_rules(example))

    def _moderation(self, present: dict[str, float], tagger_tags: set[str]) -> dict[str, float]:
        temporary = {tag.name for tag in self.computed.values() if tag.temporary}
        kept = {name: conf for name, conf in present.items() if name not in temporary}
        derived = {name for name in self.computed if name in kept}
        return {
            name: conf
            for name, conf in kept.items()
            if name in self.values
            and (name in derived or (self.config.direct_tags and name in tagger_tags))
        }

    def _run_rules(self, example: Example) -> tuple[dict[str, float], set[str]]:
        """Every tag's confidence once the rules ran (temporary computed tags still in), and
        the tagger's own tags above the threshold."""
        present: dict[str, float] = {}
        tagger_tags = set()
        for name, confidence in example.tags or ():
            if confidence >= self.config.min_confidence:
                key = normalise_tag(name)
                present[key] = max(present.get(key, 0.0), confidence)
                tagger_tags.add(key)
        # Rules run in table order: later computed tags read earlier ones (`nudity + female`).
        for tag in self.computed.values():
            value = tag.value(present)
            if value > 0:
                present[tag.name] = value
            elif not (self.config.direct_tags and tag.name in tagger_tags):
                present.pop(tag.name, None)
        return present, tagger_tags

    def reasons(self, example: Example) -> list[tuple[str, str, float]]:
        """Why the rules rate the item as they do: (tagger tag, moderation tag, its value) for
        each tag behind a moderation tag that sets the level, highest value first.

        A moderation tag sets the level when its value reaches the rated level's threshold
        (with "max" aggregation), or a Blocked tag blocks; with "sum" every moderation tag
        adds to the score. Computed tags are followed back through the rules that fired to
        the tagger's tags; the item's own spelling of each tag is kept.
        """
        present, tagger_tags = self._run_rules(example)
        tags = self._moderation(present, tagger_tags)
        blocked = any(self.values[name] >= BLOCKED.level for name in tags)
        rating = self.rate(self.score(tags), blocked=blocked)
        floor = BLOCKED.level if blocked else dict(self.thresholds).get(rating, float("inf"))
        spelled = {normalise_tag(name): name for name, _ in example.tags or ()}
        found: dict[str, tuple[str, float]] = {}
        for name in sorted(tags, key=lambda n: -self.values[n]):
            value = self.values[name]
            if self.config.aggregation == "max" and value < floor:
                continue
            for source in self._tagger_sources(name, present, tagger_tags):
                found.setdefault(spelled.get(source, source), (name, value))
        return [(tag, name, value) for tag, (name, value) in found.items()]

    def _tagger_sources(
        self,
        name: str,
        present: dict[str, float],
        tagger_tags: set[str],
        seen: frozenset[str] = frozenset(),
    ) -> list[str]:
        """The tagger tags a (computed) tag comes from, following computed tags down."""
        computed = self.computed.get(name)
        if computed is None or name in seen or computed.value(present) <= 0:
            return [name] if name in tagger_tags else []
        sources: list[str] = []
        for source in sorted(computed.sources(present)):
            below = self._tagger_sources(source, present, tagger_tags, seen | {name})
            sources.extend(s for s in below if s not in sources)
        return sources

    def score(self, moderation_tags: dict[str, float]) -> float:
        values = [self.values[name] for name in moderation_tags]
        if not values:
            return 0.0
        return float(max(values) if self.config.aggregation == "max" else sum(values))

    def rate(self, score: float, *, blocked: bool) -> Rating:
        if blocked:
            return Rating.XXX
        rating = Rating.PG
        for candidate, threshold in self.thresholds:
            if score >= threshold:
                rating = max(rating, candidate)
        return rating

    def _predict(self, examples: Sequence[Example]) -> ExpertOutput:
        output = ExpertOutput.empty(len(examples), self.feature_size)
        for i, example in enumerate(examples):
            if example.tags is None:
                continue
            tags = self.moderation_tags(example)
            blocked = any(self.values[name] >= BLOCKED.level for name in tags)
            for name, confidence in tags.items():
                column = _feature_column(self.values[name])
                output.features[i, column] = max(output.features[i, column], confidence)
            rating = self.rate(self.score(tags), blocked=blocked)
            output.probs[i, rating.index] = 1.0
            output.abstain[i] = False
            output.flagged[i] = blocked
        return output

    def _save_state(self, directory: Path) -> None:
        (directory / "rules.csv").write_text(self.rules_text, encoding="utf-8")
        (directory / "levels.csv").write_text(self.levels_text, encoding="utf-8")

    def _load_state(self, directory: Path) -> None:
        """Nothing to do: `restore` already read the tables saved in `directory`."""


def _feature_column(value: float) -> int:
    """Which per-level feature a tag's value counts towards: the highest level it reaches."""
    column = 0
    for i, level in enumerate(FEATURE_LEVELS):
        if value >= level:
            column = i
    return column


def _read_table(path: str | None, packaged: str) -> str:
    if path is None:
        return resources.files("rating_models.vocab").joinpath(packaged).read_text("utf-8")
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ExpertError(f"tag rules table {path}: {error.strerror}") from None


def _parse_rules(text: str, where: str, sources: set[str]) -> dict[str, ComputedTag]:
    computed: dict[str, ComputedTag] = {}
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        line = f"{where}:{reader.line_num}"
        try:
            if row["sources"] not in sources:
                continue
            name = normalise_tag(row["computed_tag"])
            level = _level(row["computed_level"])
            term = parse_qualifier(row["qualifier"])
            temporary = row["temp"].strip() == "1"
        except (KeyError, AttributeError):
            raise ExpertError(
                f"{line}: expected columns computed_tag, computed_level, sources, temp, qualifier"
            ) from None
        except (ExpertError, ValueError) as error:
            raise ExpertError(f"{line}: {error}") from None
        tag = computed.setdefault(name, ComputedTag(name, level, temporary))
        tag.level = tag.level if level is None else level
        (tag.vetoes if term.is_veto else tag.rules).append(term)
    return computed


def _parse_levels(text: str, where: str) -> dict[str, float]:
    values: dict[str, float] = {}
    reader = csv.DictReader(io.StringIO(text))
    for row in reader:
        try:
            level = _level(row["level"])
            tag = normalise_tag(row["tag"])
        except (KeyError, AttributeError):
            raise ExpertError(f"{where}: expected columns tag, level") from None
        except ValueError as error:
            raise ExpertError(f"{where}:{reader.line_num}: {error}") from None
        if level is not None:
            values[tag] = float(level)
    return values


def _level(text: str | None) -> int | None:
    """A level cell: blank (a helper tag with no level of its own) or a Civitai level."""
    if text is None or not text.strip():
        return None
    return parse_label(text).level
