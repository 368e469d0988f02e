"""An item's content is fixed once a model has rated it: a trigger on media_mediaitem, on
PostgreSQL and on SQLite, refuses an UPDATE that changes the prompt, negative prompt, tags,
image or image hash of an item with a prediction. Its predictions, labels and stored features
describe that content; changed in place, they would describe something nobody rated. A
correction is a new item (`media.corrections.item_correct`).

The one change allowed is a purge: `purged_at` set and every content field cleared. A tombstone
stays a tombstone: once purged, neither the purge marks nor the (empty) content change again.

Like the append-only triggers (`moderation.audit.append_only`), the refusal is SQLSTATE 23000
on PostgreSQL and RAISE(ABORT) on SQLite, so Django raises `IntegrityError` whoever sends the
statement. The trigger is named with the same `history_` prefix, which the SQLite flush lifts.
"""

from __future__ import annotations

from moderation.audit.append_only import PREFIX

TABLE = "media_mediaitem"
TRIGGER = f"{PREFIX}media_content"
_PG_FUNCTION_NAME = f"{PREFIX}media_content_lock"

CONTENT = ("prompt", "negative_prompt", "tags", "image", "image_sha256")
PURGE_MARKS = ("purged_at", "purged_by_id", "purge_reason")

# What a purge leaves: the content cleared (tags NULL, not [], which says "tagged, no tags").
_PURGED = (
    "NEW.purged_at IS NOT NULL AND NEW.prompt = '' AND NEW.negative_prompt = '' "
    "AND NEW.tags IS NULL AND NEW.image = '' AND NEW.image_sha256 IS NULL"
)
_PREDICTED = "EXISTS (SELECT 1 FROM inference_prediction WHERE item_id = OLD.id)"


def _changed(columns: tuple[str, ...], distinct: str) -> str:
    return "(" + " OR ".join(f"NEW.{c} {distinct} OLD.{c}" for c in columns) + ")"


def _pg_function() -> str:
    changed = _changed(CONTENT, "IS DISTINCT FROM")
    marks_changed = _changed(PURGE_MARKS, "IS DISTINCT FROM")
    # Nested IFs: the prediction look-up runs only for an update that changes the content.
    return f"""
CREATE OR REPLACE FUNCTION {_PG_FUNCTION_NAME}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.purged_at IS NOT NULL AND ({marks_changed} OR {changed}) THEN
        RAISE EXCEPTION 'media item % is purged: a tombstone stays a tombstone', OLD.id
            USING ERRCODE = '23000';
    END IF;
    IF NEW.purged_at IS NOT NULL AND NOT ({_PURGED}) THEN
        RAISE EXCEPTION 'media item %: a purge clears all of the content', OLD.id
            USING ERRCODE = '23000';
    END IF;
    IF {changed} AND NEW.purged_at IS NULL THEN
        IF {_PREDICTED} THEN
            RAISE EXCEPTION 'media item % has a prediction: its content is fixed', OLD.id
                USING ERRCODE = '23000', HINT = 'A correction is a new item.';
        END IF;
    END IF;
    RETURN NEW;
END;
$$
"""


def _sqlite_trigger() -> str:
    changed = _changed(CONTENT, "IS NOT")
    marks_changed = _changed(PURGE_MARKS, "IS NOT")
    # RAISE(ABORT) takes a literal message: the item is the row being updated.
    return f"""
CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON "{TABLE}" FOR EACH ROW BEGIN
    SELECT RAISE(ABORT, 'media item is purged: a tombstone stays a tombstone')
        WHERE OLD.purged_at IS NOT NULL AND ({marks_changed} OR {changed});
    SELECT RAISE(ABORT, 'media item: a purge clears all of the content')
        WHERE NEW.purged_at IS NOT NULL AND NOT ({_PURGED});
    SELECT RAISE(ABORT, 'media item has a prediction: its content is fixed')
        WHERE {changed} AND NEW.purged_at IS NULL AND {_PREDICTED};
END
"""


def lock_sql(vendor: str) -> list[str]:
    """The statements that install the content lock on this database."""
    if vendor == "postgresql":
        return [
            _pg_function(),
            f'CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON "{TABLE}" '
            f"FOR EACH ROW EXECUTE FUNCTION {_PG_FUNCTION_NAME}()",
        ]
    if vendor == "sqlite":
        return [_sqlite_trigger()]
    raise NotImplementedError(f"the content lock needs PostgreSQL or SQLite, not {vendor}")


def unlock_sql(vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [
            f'DROP TRIGGER IF EXISTS {TRIGGER} ON "{TABLE}"',
            f"DROP FUNCTION IF EXISTS {_PG_FUNCTION_NAME}()",
        ]
    return [f"DROP TRIGGER IF EXISTS {TRIGGER}"]


# RunPython functions for the migration. params=None: the SQL goes as written, so the
# plpgsql format's % is not read as a placeholder.


def lock(apps, schema_editor) -> None:
    for sql in lock_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql, params=None)


def unlock(apps, schema_editor) -> None:
    for sql in unlock_sql(schema_editor.connection.vendor):
        schema_editor.execute(sql, params=None)
