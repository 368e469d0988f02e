"""Predictions are history: an item's predictions are never deleted with it (PROTECT), and a
trigger refuses UPDATE and DELETE of a prediction (moderation/audit/append_only.py)."""

import django.db.models.deletion
from django.db import migrations, models

from moderation.audit.append_only import AppendOnly


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0003_prediction_mlp_experts"),
        ("media", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="prediction",
            name="item",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="predictions",
                to="media.mediaitem",
            ),
        ),
        AppendOnly("prediction"),
    ]
