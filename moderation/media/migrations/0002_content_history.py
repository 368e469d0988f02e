"""Content history: a correction is a new item that supersedes the old one, a purge leaves a
tombstone (who, when, why), and the database refuses to change the content of an item with a
prediction, except by a purge (moderation/media/content_lock.py)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from moderation.media import content_lock


class Migration(migrations.Migration):
    dependencies = [
        ("media", "0001_initial"),
        # The trigger reads inference_prediction: after 0003, which rebuilds that table on
        # SQLite. SQLite refuses to rename a rebuilt table that a trigger names, so a later
        # migration that rebuilds it there must drop this trigger first and install it again.
        ("inference", "0003_prediction_mlp_experts"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="mediaitem",
            name="purge_reason",
            field=models.TextField(blank=True, editable=False),
        ),
        migrations.AddField(
            model_name="mediaitem",
            name="purged_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="mediaitem",
            name="purged_by",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        migrations.AddField(
            model_name="mediaitem",
            name="supersedes",
            field=models.ForeignKey(
                blank=True,
                editable=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="superseded_by",
                to="media.mediaitem",
            ),
        ),
        migrations.RunPython(content_lock.lock, content_lock.unlock, elidable=False),
    ]
