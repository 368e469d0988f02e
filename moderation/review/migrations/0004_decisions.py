"""Decisions (issue 13): every act on an item is an append-only decision, and a final decision
writes the label. Each label written before this migration gets the decision that wrote it
(its moderator, origin and time; the label it superseded is the one it saw), so every label
has one. Items keep their labels and predictions: PROTECT, not CASCADE."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.db.models import OuterRef, Subquery

BATCH = 2000


def decisions_for_old_labels(apps, schema_editor) -> None:
    Label = apps.get_model("review", "Label")
    Decision = apps.get_model("review", "Decision")
    labels = Label.objects.filter(decision__isnull=True).order_by("pk")
    while batch := list(labels[:BATCH]):
        decisions = Decision.objects.bulk_create(
            Decision(
                item_id=label.item_id,
                moderator_id=label.moderator_id,
                origin=label.origin,
                path="import" if label.moderator_id is None else "review",
                level=label.level,
                status="final",
                saw_label_id=label.supersedes_id,
            )
            for label in batch
        )
        for label, decision in zip(batch, decisions, strict=True):
            label.decision_id = decision.pk
        Label.objects.bulk_update(batch, ["decision"])
    written = Label.objects.filter(decision=OuterRef("pk")).values("created_at")[:1]
    Decision.objects.update(created_at=Subquery(written))


class Migration(migrations.Migration):
    dependencies = [
        ("inference", "0004_prediction_append_only"),
        ("media", "0001_initial"),
        ("review", "0003_queue_and_label_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterField(
            model_name="label",
            name="item",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="labels",
                to="media.mediaitem",
            ),
        ),
        migrations.AlterField(
            model_name="label",
            name="prediction",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="inference.prediction",
            ),
        ),
        migrations.CreateModel(
            name="Decision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("origin", models.CharField(default="moderator", max_length=50)),
                (
                    "path",
                    models.CharField(
                        choices=[
                            ("review", "review"),
                            ("correction", "correction"),
                            ("import", "import"),
                            ("admin", "admin"),
                        ],
                        max_length=20,
                    ),
                ),
                ("level", models.PositiveSmallIntegerField()),
                (
                    "status",
                    models.CharField(
                        choices=[("final", "final"), ("pending", "pending")],
                        default="final",
                        max_length=10,
                    ),
                ),
                ("reason", models.TextField(blank=True)),
                ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                (
                    "item",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="decisions",
                        to="media.mediaitem",
                    ),
                ),
                (
                    "moderator",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="decisions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                (
                    "saw_label",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="review.label",
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="label",
            name="decision",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="labels",
                to="review.decision",
            ),
        ),
        migrations.AddConstraint(
            model_name="label",
            constraint=models.UniqueConstraint(
                condition=models.Q(("supersedes__isnull", True)),
                fields=("item",),
                name="one_first_label_per_item",
            ),
        ),
        migrations.AddIndex(
            model_name="decision",
            index=models.Index(fields=["item", "-created_at"], name="review_decision_item"),
        ),
        migrations.AddConstraint(
            model_name="decision",
            constraint=models.CheckConstraint(
                condition=models.Q(("level__in", [1, 2, 4, 8, 16, 32])), name="decision_level_valid"
            ),
        ),
        migrations.RunPython(decisions_for_old_labels, migrations.RunPython.noop),
    ]
