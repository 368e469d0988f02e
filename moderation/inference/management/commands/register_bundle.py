"""`manage.py register_bundle DIR [--promote]`: record a trained bundle as a model version."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation.inference.versions import model_version_register
from rating_models.bundle import BundleError


class Command(BaseCommand):
    help = "Register a rating bundle directory as a model version (optionally the champion)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="bundle directory (written by `rating-models train`)")
        parser.add_argument("--promote", action="store_true", help="make it the champion")

    def handle(self, *args, path: str, promote: bool, **options) -> None:
        from moderation.training.gate import evaluation_create_from_manifest

        try:
            version = model_version_register(path=path, promote=promote)
        except BundleError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(f"model version {version.version}: {version.status}")
        if evaluation := evaluation_create_from_manifest(version=version):
            self.stdout.write(f"its figures on {evaluation.n} test items, from its manifest")
