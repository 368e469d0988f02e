"""Why the bundle rated an item as it did: per expert, the words and tags that pushed it there.

Each expert is explained by the cheapest method that is faithful to it:

- tag rules (`rules`): the tagger tags behind the moderation tags that set the level
  (`TagRulesExpert.reasons`); weight = that moderation tag's level (1 ... 32).
- n-gram (`linear`): the linear model's score toward the rating, split over the n-grams'
  words and tags (`NgramExpert.attributions`); weight in log-odds, exact.
- transformers and the LSTM (`occlusion`): each word and tag left out in turn
  (`rating_models.occlusion`); weight = the drop of the expert's probability mass at or above
  its rating (0 ... 1).

The first two cost a few milliseconds a batch and explain every item. Occlusion rates one
variant per word and tag, dozens per item: it runs within a time budget, riskiest items
first (highest suggested rating, then the MLP's mass above it), and only on the items a
moderator will see (`queued`); the rest are marked partial. A worker passes the time its
prediction took, so that with explanations it rates at least half as many items a second
(bench/inference.py).

One item's explanation, as stored with its prediction (JSON):

    {
      "version": 1,
      "partial": false,          # true: some experts' occlusion was left out ("skipped")
      "skipped": [],             # those experts' names
      "experts": {               # experts that abstained, or that nothing explains, are absent
        "tag_rules": {"rating": 8, "method": "rules",
                      "top": [{"tag": "completely_nude", "weight": 8.0, "via": "nudity"}]},
        "ngram": {"rating": 8, "method": "linear",
                  "top": [{"word": "nude", "weight": 1.8342, "spans": [[2, 6]]},
                          {"tag": "completely_nude", "weight": 0.4121}]},
        "text": {"rating": 8, "method": "occlusion",
                 "top": [{"word": "nude", "weight": 0.6127, "spans": [[2, 6]]}]}
      }
    }

`rating` is the expert's rating as a level (PG 1 ... XXX 16). `top` holds at most `TOP`
entries, strongest first, each a `word` (lower-cased, as the expert read it; `spans` are its
[start, end) character offsets in the item's raw prompt, for highlighting) or a `tag` (the
item's own spelling of it); only entries that pushed toward the rating (weight > 0) are kept.
"""

from __future__ import annotations

import itertools
import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rating_models.bundle import Bundle, BundlePrediction
from rating_models.examples import Example
from rating_models.experts import Expert
from rating_models.occlusion import occlude, units, word_pattern, work
from rating_models.ratings import Rating
from rating_models.text import Unit

FORMAT_VERSION = 1
TOP = 8
OCCLUDED_KINDS = ("transformer", "lstm")
# Variants per `predict` call when the budget allows: about one encoder batch.
GROUP_VARIANTS = 64
# Highlighting every "the" of a long prompt helps no one.
MAX_SPANS = 20
# What reading one character of a variant costs each expert on this machine, learned from the
# groups run so far in this process, so that a group starts only when it should end within
# the budget. Per character, not per variant: a long prompt's variants cost more each.
_SECONDS_PER_CHARACTER: weakref.WeakKeyDictionary[Expert, float] = weakref.WeakKeyDictionary()


def explain(
    bundle: Bundle,
    examples: Sequence[Example],
    prediction: BundlePrediction,
    *,
    budget_seconds: float | None = None,
    queued: np.ndarray | None = None,
) -> list[dict]:
    """Each item's explanation (the shape is in the module docstring), from the bundle's
    `prediction` of `examples`.

    `budget_seconds` bounds the whole call (None: no bound); occlusion stops before a group
    of items that would overrun it. `queued` (N,) bool marks the items a moderator will see,
    the only ones occlusion runs on (None: all).
    """
    started = time.perf_counter()
    explanations = _cheap(bundle, examples, prediction)
    occluded = [n for n, e in bundle.experts.items() if e.kind in OCCLUDED_KINDS]
    rows = _riskiest_first(prediction, queued)
    deadline = math.inf if budget_seconds is None else started + budget_seconds
    done = _occlude_within(bundle, occluded, examples, prediction, rows, deadline)
    for row, explanation in enumerate(explanations):
        experts, skipped = explanation["experts"], explanation["skipped"]
        for name in occluded:
            if prediction.experts[name].abstain[row]:
                continue
            if (row, name) in done:
                top = _top(done[row, name], examples[row])
                experts[name] = _entry(prediction, name, row, "occlusion", top)
            else:
                skipped.append(name)
        explanation["experts"] = {n: experts[n] for n in bundle.experts if n in experts}
        explanation["partial"] = bool(skipped)
    return explanations


# -- the cheap, exact part: every item --------------------------------------------------------


def _cheap(bundle: Bundle, examples: Sequence[Example], prediction: BundlePrediction) -> list[dict]:
    """Every item's explanation by the tag rules and the n-gram experts."""
    explanations = [
        {"version": FORMAT_VERSION, "partial": False, "skipped": [], "experts": {}}
        for _ in examples
    ]
    for name, expert in bundle.experts.items():
        output = prediction.experts[name]
        rows = [row for row in range(len(examples)) if not output.abstain[row]]
        if expert.kind == "tag_rules":
            method = "rules"
            tops = [_rules_top(expert.reasons(examples[row])) for row in rows]
        elif expert.kind == "ngram":
            method = "linear"
            weights = expert.attributions(
                [examples[row] for row in rows], [int(output.ratings[row]) for row in rows]
            )
            tops = [_top(w, examples[row]) for w, row in zip(weights, rows, strict=True)]
        else:
            continue
        for row, top in zip(rows, tops, strict=True):
            explanations[row]["experts"][name] = _entry(prediction, name, row, method, top)
    return explanations


def _rules_top(reasons: list[tuple[str, str, float]]) -> list[dict]:
    return [{"tag": tag, "weight": value, "via": via} for tag, via, value in reasons[:TOP]]


def _entry(prediction: BundlePrediction, name: str, row: int, method: str, top: list) -> dict:
    rating = Rating.from_index(int(prediction.experts[name].ratings[row]))
    return {"rating": rating.level, "method": method, "top": top}


def _top(weights: dict[Unit, float], example: Example) -> list[dict]:
    """The strongest entries toward the rating, as JSON, words with their spans."""
    ranked = sorted(weights.items(), key=lambda pair: (-pair[1], pair[0].kind, pair[0].name))
    top = []
    for unit, weight in ranked[:TOP]:
        weight = round(float(weight), 4)
        if weight <= 0:
            break
        entry = {unit.kind: unit.name, "weight": weight}
        if unit.kind == "word":
            found = itertools.islice(word_pattern(unit.name).finditer(example.prompt), MAX_SPANS)
            entry["spans"] = [[m.start(), m.end()] for m in found]
        top.append(entry)
    return top


# -- the costly part: occlusion within the budget ---------------------------------------------


def _riskiest_first(prediction: BundlePrediction, queued: np.ndarray | None) -> list[int]:
    """Rows a moderator will see, highest suggested rating first, then the MLP's mass above it."""
    rows = range(len(prediction.suggested)) if queued is None else np.flatnonzero(queued)

    def risk(row: int) -> tuple[int, float, int]:
        suggested = int(prediction.suggested[row])
        return (-suggested, -float(prediction.mlp_probs[row, suggested + 1 :].sum()), row)

    return sorted((int(r) for r in rows), key=risk)


@dataclass
class _Task:
    """One item's occlusion by one expert: its words and tags, and what it costs to read."""

    row: int
    name: str
    units: list[Unit]
    work: int  # characters read over all its variants


def _occlude_within(
    bundle: Bundle,
    names: list[str],
    examples: Sequence[Example],
    prediction: BundlePrediction,
    rows: list[int],
    deadline: float,
) -> dict[tuple[int, str], dict[Unit, float]]:
    """Occlusion of `rows` in groups of one `predict` call per expert, while the next group
    should end before `deadline`; an item whose own estimate would overrun it is passed over.
    Each group teaches the next its cost; before any has run in this process, a group of one
    item measures it."""
    tasks: dict[int, list[_Task]] = {}
    for row in rows:
        tasks[row] = []
        for name in names:
            if not prediction.experts[name].abstain[row]:
                found = units(bundle.experts[name], examples[row])
                tasks[row].append(
                    _Task(row, name, found, work(bundle.experts[name], examples[row], found))
                )
    done: dict[tuple[int, str], dict[Unit, float]] = {}
    pending = list(rows)
    while group := _next_group(bundle, [tasks[row] for row in pending], deadline):
        for name in names:
            _occlude_group(bundle.experts[name], examples, prediction, group, name, done)
        taken = {task.row for task in group}
        pending = [row for row in pending if row not in taken]
    return done


def _next_group(bundle: Bundle, pending: list[list[_Task]], deadline: float) -> list[_Task]:
    """The tasks of the next items to occlude together: in order, as many as fill about one
    encoder batch and should end before `deadline`; one item alone while a cost is unknown."""
    group: list[_Task] = []
    seconds = 0.0
    size = 0
    for item in pending:
        cost = _estimate(bundle, item)
        if cost is None and group:
            break
        if time.perf_counter() + seconds + (cost or 0.0) > deadline:
            continue
        group += item
        seconds += cost or 0.0
        size += sum(len(task.units) for task in item)
        if cost is None or size >= GROUP_VARIANTS:
            break
    return group


def _estimate(bundle: Bundle, item: list[_Task]) -> float | None:
    """Seconds an item's occlusion should take; None while an expert's cost is unknown."""
    total = 0.0
    for task in item:
        if task.work:
            per_character = _SECONDS_PER_CHARACTER.get(bundle.experts[task.name])
            if per_character is None:
                return None
            total += task.work * per_character
    return total


def _occlude_group(
    expert: Expert,
    examples: Sequence[Example],
    prediction: BundlePrediction,
    group: list[_Task],
    name: str,
    done: dict[tuple[int, str], dict[Unit, float]],
) -> None:
    """One `predict` call over the variants of the group's items that the expert reads."""
    tasks = [task for task in group if task.name == name]
    if not tasks:
        return
    rows = [task.row for task in tasks]
    output = prediction.experts[name]
    began = time.perf_counter()
    weights = occlude(
        expert,
        [examples[row] for row in rows],
        [int(output.ratings[row]) for row in rows],
        output.probs[rows],
        [task.units for task in tasks],
    )
    total = sum(task.work for task in tasks)
    if total:
        measured = (time.perf_counter() - began) / total
        known = _SECONDS_PER_CHARACTER.get(expert)
        _SECONDS_PER_CHARACTER[expert] = measured if known is None else (known + measured) / 2
    for task, found in zip(tasks, weights, strict=True):
        done[task.row, name] = found
