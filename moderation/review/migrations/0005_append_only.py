"""Decisions and labels are history: a trigger refuses UPDATE and DELETE on both tables
(moderation/audit/append_only.py). A separate migration from 0004, whose backfill updates
labels: PostgreSQL will not create a trigger on a table with pending trigger events."""

from django.db import migrations

from moderation.audit.append_only import AppendOnly


class Migration(migrations.Migration):
    dependencies = [("review", "0004_decisions")]

    operations = [AppendOnly("decision"), AppendOnly("label")]
