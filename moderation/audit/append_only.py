"""History the database itself protects: a migration operation that installs a trigger
refusing UPDATE and DELETE on a table, on PostgreSQL and on SQLite.

PostgreSQL raises SQLSTATE 23000 (integrity constraint violation), SQLite RAISE(ABORT): both
reach Django as `IntegrityError`, whoever sends the statement (the ORM, a queryset `update()`,
raw SQL, psql). Resetting a whole database still works: PostgreSQL's TRUNCATE fires no row
trigger, and on SQLite `moderation.db.sqlite3`'s flush lifts these triggers for its DELETEs.
"""

from __future__ import annotations

from django.db.migrations.operations.base import Operation

# Every trigger of ours is named with this prefix: the SQLite flush finds them by it.
PREFIX = "history_"

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION history_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = '23000';
END;
$$
"""


def trigger_sql(table: str, vendor: str) -> list[str]:
    """The statements that make `table` append-only on this database."""
    if vendor == "postgresql":
        return [
            _PG_FUNCTION,
            f'CREATE TRIGGER {PREFIX}{table} BEFORE UPDATE OR DELETE ON "{table}" '
            "FOR EACH ROW EXECUTE FUNCTION history_refuse_change()",
        ]
    if vendor == "sqlite":
        return [
            f'CREATE TRIGGER {PREFIX}{table}_{op.lower()} BEFORE {op} ON "{table}" '
            f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {op} refused'); END"
            for op in ("UPDATE", "DELETE")
        ]
    raise NotImplementedError(f"append-only tables need PostgreSQL or SQLite, not {vendor}")


def drop_sql(table: str, vendor: str) -> list[str]:
    if vendor == "postgresql":
        return [f'DROP TRIGGER IF EXISTS {PREFIX}{table} ON "{table}"']
    return [f"DROP TRIGGER IF EXISTS {PREFIX}{table}_{op}" for op in ("update", "delete")]


class AppendOnly(Operation):
    """Refuse UPDATE and DELETE on a model's table from now on (reversible)."""

    reversible = True

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name

    def state_forwards(self, app_label, state) -> None:
        pass

    def _table(self, app_label, state) -> str:
        return state.apps.get_model(app_label, self.model_name)._meta.db_table

    def database_forwards(self, app_label, schema_editor, from_state, to_state) -> None:
        table = self._table(app_label, to_state)
        for sql in trigger_sql(table, schema_editor.connection.vendor):
            schema_editor.execute(sql, params=None)

    def database_backwards(self, app_label, schema_editor, from_state, to_state) -> None:
        table = self._table(app_label, from_state)
        for sql in drop_sql(table, schema_editor.connection.vendor):
            schema_editor.execute(sql, params=None)

    def describe(self) -> str:
        return f"Make {self.model_name} append-only (a trigger refuses UPDATE and DELETE)"

    def deconstruct(self):
        return self.__class__.__name__, [self.model_name], {}

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.model_name.lower()}_append_only"
