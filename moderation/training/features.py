"""What the experts said, read back for a retrain of the MLP alone: no expert runs again.

An MLP learns how far to trust each expert, so it must learn from what the experts say about
items they were not trained on. For the items a bundle's experts were trained on, that is the
out-of-fold outputs the bundle keeps (`rating_models.stacking`); for every other item, the
version's stored prediction (the experts never saw its label). An expert's stored output on
its own training item is in-sample, over-confident, and is never an MLP's input.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from django.db import connection
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KT

from moderation.inference.models import ModelVersion, Prediction
from moderation.media.models import MediaItem
from rating_models.bundle import Bundle
from rating_models.combine.mlp import ExpertSlot, MultimodalMLP
from rating_models.experts import ExpertOutput
from rating_models.ratings import NUM_CLASSES, Rating
from rating_models.stacking import OutOfFold

LEVEL_INDEX = {rating.level: rating.index for rating in Rating}  # stored level -> class index


def among(ids: list[int]) -> Any:
    """The right-hand side of `pk__in` for many ids. On PostgreSQL one array parameter: Django
    and psycopg prepare one placeholder per id, seconds for the 100,000 of a large retrain."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", (ids,))
    return ids


def _stored_features(
    bundle: Bundle, version: ModelVersion, items: list[MediaItem], *fields: Any
) -> tuple[np.ndarray, list[tuple]]:
    """The items' stored features (N, total feature size) as float16, in the items' order,
    and the other `fields` of each item's prediction."""
    stored = {
        row[0]: row[1:]
        for row in Prediction.objects.filter(
            model_version=version, item_id__in=among([i.pk for i in items])
        ).values_list("item_id", "features", *fields)
    }
    rows = [stored[item.pk] for item in items]
    width = sum(slot.feature_size for slot in bundle.mlp.slots)
    features = np.frombuffer(b"".join(bytes(row[0]) for row in rows), dtype=np.float16)
    return features.reshape(len(rows), width), [row[1:] for row in rows]


def stored_outputs(
    bundle: Bundle, version: ModelVersion, items: list[MediaItem]
) -> dict[str, ExpertOutput]:
    """Every expert's output on the items, rebuilt from the version's stored predictions: no
    expert runs again. Features are the stored float16 ones; per-expert flags are not stored
    (the prediction's own flag is), so they read False."""
    features, rows = _stored_features(bundle, version, items, "experts")
    outputs, start = {}, 0
    for slot in bundle.mlp.slots:
        said = [experts[slot.name] for (experts,) in rows]
        abstain = np.array([s["rating"] is None for s in said], dtype=bool)
        probs = np.array(
            [s["probs"] or [0.0] * NUM_CLASSES for s in said], dtype=np.float32
        ).reshape(len(said), NUM_CLASSES)
        # The stored probabilities are rounded: where that ties the top two, the stored
        # rating is the one the expert gave.
        rating = np.array([LEVEL_INDEX.get(s["rating"], -1) for s in said], dtype=np.int64)
        tied = ~abstain & (probs.argmax(axis=1) != rating)
        probs[tied, rating[tied]] += 1e-5
        outputs[slot.name] = ExpertOutput(
            probs,
            features[:, start : start + slot.feature_size].astype(np.float32),
            abstain,
        )
        start += slot.feature_size
    return outputs


def stored_inputs(
    bundle: Bundle, version: ModelVersion, items: list[MediaItem]
) -> tuple[np.ndarray, np.ndarray]:
    """The MLP's input rows (`MultimodalMLP.inputs`, every expert that spoke present) and the
    items' labels, rebuilt from stored predictions. Only whether each expert spoke is read
    from the stored JSON, by the database: decoding all of every prediction's JSON takes
    seconds at 100,000 rows."""
    spoke = [KT(f"experts__{slot.name}__rating") for slot in bundle.mlp.slots]
    features, rows = _stored_features(bundle, version, items, *spoke)
    # A rating is a level; an abstention is JSON null (None, or "null" as SQLite reads it).
    present = np.array([[r not in (None, "null") for r in row] for row in rows], dtype=bool)
    present = present.reshape(len(rows), len(spoke))
    x = np.zeros((len(items), bundle.mlp.input_size), dtype=np.float32)
    start = column = 0
    for k, slot in enumerate(bundle.mlp.slots):
        block = slice(column, column + slot.feature_size)
        x[:, block] = features[:, start : start + slot.feature_size]
        x[~present[:, k], block] = 0.0  # an abstaining expert contributes zeros and flag 0
        x[:, column + slot.feature_size] = present[:, k]
        start += slot.feature_size
        column += slot.feature_size + 1
    return x, labels(items)


def labels(items: Sequence[MediaItem]) -> np.ndarray:
    """(N,) class indices of the items' current labels (`current_level`)."""
    return np.array([LEVEL_INDEX[i.current_level] for i in items], dtype=np.int64)


# -- out-of-fold outputs ---------------------------------------------------------------------


def out_of_fold_problem(out_of_fold: OutOfFold | None, slots: Sequence[ExpertSlot]) -> str | None:
    """Why the bundle's out-of-fold outputs cannot give its MLP's rows; None when they can."""
    if out_of_fold is None:
        return (
            "the champion's bundle keeps no out-of-fold outputs (stacking/out_of_fold.npz): the "
            "rows of the items its experts were trained on are their in-sample outputs"
        )
    sizes = {name: out.features.shape[1] for name, out in out_of_fold.outputs.items()}
    wrong = [s.name for s in slots if sizes.get(s.name) != s.feature_size]
    if wrong:
        return (
            f"the champion's out-of-fold outputs do not match its experts {wrong}: they are "
            "not used, and the rows of the items its experts were trained on are in-sample"
        )
    return None


def out_of_fold_ids(out_of_fold: OutOfFold | None, items: Sequence[MediaItem]) -> list[str | None]:
    """Each item's id in the out-of-fold outputs, None where it has none.

    A bundle trained by a retrain knows an item by its uid (`inference.item_example`); one
    trained from the corpus (`rating-models train`) by the corpus id, which the import keeps
    as the item's external id. An external id that two of the items share matches neither.
    """
    if out_of_fold is None:
        return [None] * len(items)
    known = set(out_of_fold.ids)
    external = Counter(item.external_id for item in items if item.external_id)
    ids: list[str | None] = []
    for item in items:
        if str(item.uid) in known:
            ids.append(str(item.uid))
        elif item.external_id in known and external[item.external_id] == 1:
            ids.append(item.external_id)
        else:
            ids.append(None)
    return ids


def mlp_rows(
    mlp: MultimodalMLP,
    bundle: Bundle,
    version: ModelVersion,
    items: list[MediaItem],
    ids: Sequence[str | None],
    out_of_fold: OutOfFold | None,
    *,
    unread: Sequence[str] = (),
) -> tuple[np.ndarray, np.ndarray]:
    """The input rows of a new, untrained `mlp` (the bundle's slots) and the items' labels.

    An item with an out-of-fold id (`out_of_fold_ids`) gets the experts' out-of-fold outputs,
    as `mlp.inputs` builds them; any other, the version's stored prediction. The `unread`
    experts count as absent in every row (zeros and flag 0): the MLP is not trained on them.
    """
    if mlp.trained is not None:
        raise ValueError("the rows are for an untrained MLP: a trained one silences experts")
    x = np.zeros((len(items), mlp.input_size), dtype=np.float32)
    covered = [k for k, i in enumerate(ids) if i is not None]
    rest = [k for k, i in enumerate(ids) if i is None]
    if rest:
        x[rest], _ = stored_inputs(bundle, version, [items[k] for k in rest])
    if covered:
        if out_of_fold is None:
            raise ValueError("out-of-fold ids without the out-of-fold outputs")
        x[covered] = mlp.inputs(out_of_fold.rows([ids[k] for k in covered]))
    column = 0
    for slot in mlp.slots:
        width = slot.feature_size + 1  # features, then the presence flag
        if slot.name in unread:
            x[:, column : column + width] = 0.0
        column += width
    return x, labels(items)
