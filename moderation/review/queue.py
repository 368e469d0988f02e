"""The order of the review queue: items most at risk of being down-classed first.

An item is at risk when the rating the product would show (the suggested rating) may be too
mild. Two signals say so, both from the champion's prediction:

- the MLP's probability mass above the suggested rating (it thinks a higher rating likely);
- experts that rate the item higher than the suggestion, by how many levels.

    risk = P_mlp(rating > suggested) + max(0, highest expert index - suggested index) / 4
           + 1 when an expert flagged the item (a Blocked-level tag)

Ties, and items not predicted yet (risk 0), go oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence

from rating_models.ratings import Rating, parse_label


def down_class_risk(
    *,
    suggested_level: int,
    mlp_probs: Sequence[float],
    expert_levels: Sequence[int | None],
    flagged: bool = False,
) -> float:
    """The queue priority of an item: higher is reviewed sooner (see the module docstring)."""
    suggested = Rating.parse(suggested_level).index
    above = float(sum(mlp_probs[suggested + 1 :]))
    spoken = [Rating.parse(level).index for level in expert_levels if level is not None]
    disagreement = max(0, max(spoken, default=suggested) - suggested) / 4
    return round(above + disagreement + (1.0 if flagged else 0.0), 6)


def level_label(level: int | None) -> str:
    """`PG`... `XXX`, `Blocked`, or an em dash for an abstention."""
    return "—" if level is None else parse_label(level).label
