from django.contrib import admin
from django.http import HttpRequest

from moderation.media.models import ApiClient, MediaItem


@admin.register(MediaItem)
class MediaItemAdmin(admin.ModelAdmin):
    """Items arrive through the API or `import_items` (which validate them): the admin shows
    them and lets staff fix a typo, but never creates one."""

    list_display = ["uid", "source", "external_id", "split", "has_image", "received_at"]
    list_filter = ["split", "source"]
    search_fields = ["uid", "external_id", "prompt", "image_sha256"]
    date_hierarchy = "received_at"
    readonly_fields = [
        "uid",
        "split",
        "image",
        "image_sha256",
        "width",
        "height",
        "received_at",
    ]

    @admin.display(boolean=True, description="image")
    def has_image(self, item: MediaItem) -> bool:
        return item.has_image

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """Tokens are shown once, by `manage.py api_client NAME`; here a client is only switched
    off (active) or on."""

    list_display = ["name", "active", "created_at"]
    list_filter = ["active"]
    search_fields = ["name"]
    readonly_fields = ["name", "token_sha256", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
