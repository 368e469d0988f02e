"""Each prediction keeps whether the bundle's bounded rule would publish it without a moderator,
and what pushed its rating up. Both columns are nullable without a default, so SQLite adds them
with ALTER TABLE and the append-only triggers stay in place."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("inference", "0006_rating_dispatch")]

    operations = [
        migrations.AddField(
            model_name="prediction",
            name="auto_publish",
            field=models.BooleanField(null=True),
        ),
        migrations.AddField(
            model_name="prediction",
            name="explanation",
            field=models.JSONField(null=True),
        ),
    ]
