"""Database backends of our own: SQLite with a flush that respects append-only history."""
