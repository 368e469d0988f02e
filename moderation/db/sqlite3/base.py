"""SQLite, as Django ships it, with two changes for the history triggers (`history_*`):

- a flush (the test suite's reset between transactional tests, `manage.py flush`) lifts them
  for its DELETEs and puts them back in the same transaction. Nothing else can delete history:
  PostgreSQL's flush is a TRUNCATE, which fires no row trigger, so it needs no such backend;
- a migration that rebuilds a table (SQLite alters most columns by copying the table) would
  drop the triggers on it, and fail on a trigger that names it: they are lifted around the
  rebuild and put back after it.
"""

from __future__ import annotations

from django.db.backends.sqlite3 import base, schema

from moderation.audit.append_only import PREFIX


def history_triggers(connection) -> list[tuple[str, str]]:
    """(name, CREATE statement) of every history trigger in the database."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s",
            [f"{PREFIX}%"],
        )
        return cursor.fetchall()


class DatabaseOperations(base.DatabaseOperations):
    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        statements = super().sql_flush(
            style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )
        if not statements:
            return statements
        triggers = history_triggers(self.connection)
        return (
            [f'DROP TRIGGER "{name}"' for name, _ in triggers]
            + statements
            + [sql for _, sql in triggers]
        )


class DatabaseSchemaEditor(schema.DatabaseSchemaEditor):
    def _remake_table(self, model, create_field=None, delete_field=None, alter_fields=None):
        triggers = history_triggers(self.connection)
        for name, _ in triggers:
            self.execute(f'DROP TRIGGER "{name}"', params=None)
        super()._remake_table(
            model, create_field=create_field, delete_field=delete_field, alter_fields=alter_fields
        )
        for _, sql in triggers:
            self.execute(sql, params=None)


class DatabaseWrapper(base.DatabaseWrapper):
    ops_class = DatabaseOperations
    SchemaEditorClass = DatabaseSchemaEditor
