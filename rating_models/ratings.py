"""The five content ratings, their Civitai levels and class indices, and parsing.

A rating is stored as its level (1, 2, 4, 8, 16), the number Civitai's `nsfwLevel` and
`browsingLevel` already use, so data crosses between systems without a mapping table. Models
work with the class index (0-4). Blocked (32) is a moderator's decision, not a class.
"""

from __future__ import annotations

import enum
import numbers
import re


class RatingError(ValueError):
    """A value that names no rating."""


class Rating(enum.IntEnum):
    """A content rating; the value is its level and comparisons follow restrictiveness."""

    PG = 1
    PG13 = 2
    R = 4
    X = 8
    XXX = 16

    @property
    def level(self) -> int:
        return int(self.value)

    @property
    def index(self) -> int:
        """Class index used by the models: PG is 0, XXX is 4."""
        return _LEVELS.index(self.value)

    @property
    def label(self) -> str:
        return self.name

    @classmethod
    def from_index(cls, index: int) -> Rating:
        if not 0 <= int(index) < len(_LEVELS):
            raise RatingError(f"class index {index} is out of range 0-{len(_LEVELS) - 1}")
        return cls(_LEVELS[int(index)])

    @classmethod
    def parse(cls, value: object) -> Rating:
        """Parse a rating; Blocked is refused because it is a decision, not a rating."""
        parsed = parse_label(value)
        if parsed is BLOCKED:
            raise RatingError("Blocked (32) is a moderator decision, not a rating")
        return parsed

    def __str__(self) -> str:
        return self.name


class Blocked(enum.Enum):
    """A moderator's decision that an item breaks the terms of service."""

    BLOCKED = 32

    @property
    def level(self) -> int:
        return 32

    @property
    def label(self) -> str:
        return "Blocked"

    def __str__(self) -> str:
        return "Blocked"


BLOCKED = Blocked.BLOCKED
RATINGS: tuple[Rating, ...] = tuple(Rating)
NUM_CLASSES = len(RATINGS)
_LEVELS = tuple(r.value for r in Rating)
LABELS: tuple[str, ...] = tuple(r.name for r in Rating)
EXPLICIT: frozenset[Rating] = frozenset({Rating.X, Rating.XXX})
MILD: frozenset[Rating] = frozenset({Rating.PG, Rating.PG13})

# Civitai's legacy `nsfwLevel` strings. The legacy scale has no separate XXX.
_NAMES = {
    "pg": Rating.PG,
    "pg13": Rating.PG13,
    "r": Rating.R,
    "x": Rating.X,
    "xxx": Rating.XXX,
    "none": Rating.PG,
    "soft": Rating.PG13,
    "mature": Rating.R,
    "blocked": BLOCKED,
}
_LEVEL_VALUES = {**{r.value: r for r in Rating}, 32: BLOCKED}
_SEPARATORS = re.compile(r"[\s_\-]+")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?", re.ASCII)


def parse_label(value: object) -> Rating | Blocked:
    """Parse a rating name, a legacy Civitai string or a numeric level.

    A number is always a level (1, 2, 4, 8, 16, 32), never a class index: reading `2` as
    index 2 would turn a PG13 item into R without any error.
    """
    if isinstance(value, Rating | Blocked):
        return value
    if isinstance(value, bool):
        raise RatingError(f"{value!r} is not a rating")
    if isinstance(value, numbers.Real):  # numpy and pandas numbers too
        if float(value).is_integer() and int(value) in _LEVEL_VALUES:
            return _LEVEL_VALUES[int(value)]
        raise RatingError(f"{value!r} is not a rating level (levels are 1, 2, 4, 8, 16, 32)")
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER.fullmatch(text):
            return parse_label(float(text))
        key = _SEPARATORS.sub("", text.lower())
        if key in _NAMES:
            return _NAMES[key]
        raise RatingError(
            f"{value!r} is not a rating: expected PG, PG13, R, X, XXX, Blocked, "
            "a level (1, 2, 4, 8, 16, 32) or a legacy name (None, Soft, Mature)"
        )
    raise RatingError(f"{value!r} is not a rating")
