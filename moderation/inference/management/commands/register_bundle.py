"""`manage.py register_bundle DIR [--promote [--reason WHY]]`: record a trained bundle as a
model version; `--promote` makes it the first champion, or replaces the champion under the
registry's rules (the gate never judged a registered bundle: the reason is required)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation.inference.bundles import champion
from moderation.inference.versions import model_version_register
from rating_models.bundle import BundleError


class Command(BaseCommand):
    help = "Register a rating bundle directory as a model version (optionally the champion)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="bundle directory (written by `rating-models train`)")
        parser.add_argument("--promote", action="store_true", help="make it the champion")
        parser.add_argument(
            "--reason",
            default="",
            help="why it replaces the champion (required when there is one; kept in the audit "
            "trail)",
        )

    def handle(self, *args, path: str, promote: bool, reason: str, **options) -> None:
        from moderation.training import registry
        from moderation.training.gate import evaluation_create_from_manifest

        serving = champion()
        first = promote and serving is None
        try:
            version = model_version_register(path=path, promote=first)
        except BundleError as error:
            raise CommandError(str(error)) from None
        if evaluation := evaluation_create_from_manifest(version=version):
            self.stdout.write(f"its figures on {evaluation.n} test items, from its manifest")
        if promote and not first and version.status != version.Status.CHAMPION:
            try:  # the queue is rated by it first, here, then the switch
                promotion = registry.promotion_run_now(version=version, reason=reason)
            except registry.PromotionRefused as refused:
                raise CommandError(f"registered, not promoted: {refused}") from None
            if promotion.state != promotion.State.DONE:
                raise CommandError(f"registered, not promoted: {promotion.error}")
        version.refresh_from_db()
        self.stdout.write(f"model version {version.version}: {version.status}")
