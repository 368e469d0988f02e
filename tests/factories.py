"""Small builders for test data: `from tests.factories import make_example`."""

from __future__ import annotations

import itertools
from typing import Any

from rating_models.examples import Example
from rating_models.ratings import parse_label

_ids = itertools.count(1)


def make_example(**overrides: Any) -> Example:
    """An Example with sensible defaults; any field can be overridden.

    Defaults: id "ex-1", "ex-2", ... (one counter for the whole session), prompt
    "a cat on a sofa", tags () (the tagger ran and found nothing: pass `tags=None` for an
    untagged item), label None, source "test". A `label` given as a name or level ("R", 8,
    "Blocked") is parsed for convenience; Rating and Blocked values pass through.
    """
    fields: dict[str, Any] = {
        "prompt": "a cat on a sofa",
        "tags": (),
        "label": None,
        "source": "test",
    }
    fields.update(overrides)
    if "id" not in fields:
        fields["id"] = f"ex-{next(_ids)}"
    if fields["label"] is not None:
        fields["label"] = parse_label(fields["label"])
    if fields["tags"] is not None:
        fields["tags"] = tuple((str(name), float(conf)) for name, conf in fields["tags"])
    return Example(**fields)
