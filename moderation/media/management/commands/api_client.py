from django.core.management.base import BaseCommand, CommandError, CommandParser

from moderation.media.models import ApiClient


class Command(BaseCommand):
    help = "Issue an API client and print its token (shown once; only its digest is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="the platform's name, unique")

    def handle(self, *args: object, name: str, **options: object) -> None:
        if ApiClient.objects.filter(name=name).exists():
            raise CommandError(f"a client named {name!r} exists already")
        _, token = ApiClient.issue(name)
        self.stderr.write(f"client {name!r} created; its token (store it now, shown once):")
        self.stdout.write(token)
