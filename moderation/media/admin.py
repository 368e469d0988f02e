from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse

from moderation.media.corrections import item_correct, item_purge
from moderation.media.models import ApiClient, MediaItem
from moderation.media.validation import ValidationProblem
from moderation.review.decorators import is_admin
from moderation.review.gold import gold_mark
from moderation.review.labels import current_labels
from rating_models.ratings import RATINGS

# What the models read and the labels describe: fixed once the item has a prediction.
CONTENT_FIELDS = ["prompt", "negative_prompt", "tags", "metadata", "source", "external_id"]


class PurgeForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Kept with the tombstone and in the audit trail.",
    )
    confirm = forms.BooleanField(label="I understand that the content cannot be brought back")


class CorrectForm(forms.Form):
    prompt = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 4, "cols": 80})
    )
    negative_prompt = forms.CharField(
        required=False, strip=False, widget=forms.Textarea(attrs={"rows": 2, "cols": 80})
    )
    tags = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 80}),
        help_text='JSON: [["name", confidence], ...], or null when no tagger has run.',
    )
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2, "cols": 80}))

    # Browsers send a textarea's newlines as CRLF: left so, a correction of the tags alone
    # would also change every line ending of the prompt.
    def clean_prompt(self) -> str:
        return self.cleaned_data["prompt"].replace("\r\n", "\n")

    def clean_negative_prompt(self) -> str:
        return self.cleaned_data["negative_prompt"].replace("\r\n", "\n")


class CurrentLabelFilter(admin.SimpleListFilter):
    """Items by their current label: with "Mark as gold", gold in bulk by filter."""

    title = "current label"
    parameter_name = "label"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("none", "none"), *((str(r.level), r.label) for r in RATINGS), ("32", "Blocked")]

    def queryset(self, request: HttpRequest, queryset):
        value = self.value()
        if value is None:
            return queryset
        levels = current_labels().values("item_id")
        if value == "none":
            return queryset.exclude(pk__in=levels)
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(pk__in=levels.filter(level=int(value)))


class GoldFilter(admin.SimpleListFilter):
    title = "gold"
    parameter_name = "gold"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        return [("yes", "gold"), ("no", "not gold")]

    def queryset(self, request: HttpRequest, queryset):
        if self.value() == "yes":
            return queryset.filter(gold__isnull=False)
        if self.value() == "no":
            return queryset.filter(gold__isnull=True)
        return queryset


@admin.register(MediaItem)
class MediaItemAdmin(admin.ModelAdmin):
    """Items arrive through the API or `import_items` (which validate them): the admin shows
    them and lets staff fix a typo until a model has rated the item. From then on the content
    is fixed (the database refuses a change too): "Correct content" makes a new item that
    supersedes it, and "Purge content" (admins) removes it and leaves a tombstone. Nothing is
    deleted here: the item's labels and predictions are history."""

    change_form_template = "admin/media/mediaitem/change_form.html"
    list_display = ["uid", "source", "external_id", "split", "has_image", "purged", "received_at"]
    list_filter = ["split", "source", CurrentLabelFilter, GoldFilter]
    actions = ["mark_gold"]
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
        "supersedes",
        "purged_at",
        "purged_by",
        "purge_reason",
    ]

    @admin.action(description="Mark as gold at the current label")
    def mark_gold(self, request: HttpRequest, queryset) -> None:
        if not is_admin(request.user):
            self.message_user(request, "Only admins mark gold items.", messages.ERROR)
            return
        marked = gold_mark(items=queryset, admin=request.user)
        skipped = queryset.count() - marked
        self.message_user(
            request,
            f"{marked} item{'s' if marked != 1 else ''} marked as gold"
            + (
                f"; {skipped} left out (no current label, purged, or gold already)."
                if skipped
                else "."
            ),
        )

    @admin.display(boolean=True, description="image")
    def has_image(self, item: MediaItem) -> bool:
        return item.has_image

    @admin.display(boolean=True, description="purged")
    def purged(self, item: MediaItem) -> bool:
        return item.is_purged

    def get_readonly_fields(self, request: HttpRequest, obj: MediaItem | None = None) -> list:
        fields = list(super().get_readonly_fields(request, obj))
        if obj is not None and _content_locked(obj):
            fields += CONTENT_FIELDS
        return fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: MediaItem | None = None) -> bool:
        return False

    def change_view(self, request: HttpRequest, object_id: str, form_url="", extra_context=None):
        extra_context = {**(extra_context or {}), "can_purge": is_admin(request.user)}
        try:
            return super().change_view(request, object_id, form_url, extra_context)
        except IntegrityError:
            # A model rated the item between the form's load and its save: the database kept
            # its content (the admin's transaction rolled back), and the form says why.
            messages.error(
                request,
                "Not saved: a model has rated this item since you opened it, so its content "
                "is fixed. Use Correct content to change it.",
            )
            return HttpResponseRedirect(request.get_full_path())

    def get_urls(self) -> list[URLPattern]:
        # Before the defaults: their "<path:object_id>/" would take ".../purge/" too.
        wrap = self.admin_site.admin_view
        return [
            path("<path:object_id>/purge/", wrap(self.purge_view), name="media_mediaitem_purge"),
            path(
                "<path:object_id>/correct/",
                wrap(self.correct_view),
                name="media_mediaitem_correct",
            ),
            *super().get_urls(),
        ]

    def purge_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        item = self.get_object(request, unquote(object_id))
        if item is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not is_admin(request.user):
            raise PermissionDenied("purging content is for admins")
        form = PurgeForm(request.POST) if request.method == "POST" else PurgeForm()
        if request.method == "POST" and form.is_valid():
            try:
                item_purge(item=item, admin=request.user, reason=form.cleaned_data["reason"])
            except ValidationProblem as problem:
                form.add_error("reason" if problem.field == "reason" else None, problem.message)
            else:
                self.message_user(request, "The content was purged.", messages.SUCCESS)
                return HttpResponseRedirect(_change_url(item))
        shared_with = (
            MediaItem.objects.filter(image=item.image.name, purged_at__isnull=True).exclude(
                pk=item.pk
            )
            if item.image
            else MediaItem.objects.none()
        )
        context = {
            **self._page_context(request, item, "Purge content"),
            "form": form,
            "shared_with": shared_with,
            "kept": {
                "decisions": item.decisions.count(),
                "labels": item.labels.count(),
                "predictions": item.predictions.count(),
                "audit events": item.audit_events.count(),
            },
        }
        return TemplateResponse(request, "admin/media/mediaitem/purge.html", context)

    def correct_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        item = self.get_object(request, unquote(object_id))
        if item is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_change_permission(request, item):
            raise PermissionDenied("correcting content needs the change permission")
        if request.method == "POST":
            form = CorrectForm(request.POST)
        else:
            form = CorrectForm(initial=_content_initial(item))
        if request.method == "POST" and form.is_valid():
            try:
                new = item_correct(item=item, admin=request.user, **form.cleaned_data)
            except ValidationProblem as problem:
                if problem.field in form.fields:
                    form.add_error(problem.field, problem.message)
                else:
                    form.add_error(None, str(problem))
            else:
                self.message_user(
                    request, f"Stored the correction as a new item, {new.uid}.", messages.SUCCESS
                )
                return HttpResponseRedirect(_change_url(new))
        context = {**self._page_context(request, item, "Correct content"), "form": form}
        return TemplateResponse(request, "admin/media/mediaitem/correct.html", context)

    def _page_context(self, request: HttpRequest, item: MediaItem, title: str) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": item,
            "title": title,
            "change_url": _change_url(item),
        }


def _content_locked(item: MediaItem) -> bool:
    return item.is_purged or item.predictions.exists()


def _content_initial(item: MediaItem) -> dict:
    return {
        "prompt": item.prompt,
        "negative_prompt": item.negative_prompt,
        "tags": json.dumps(item.tags),
    }


def _change_url(item: MediaItem) -> str:
    return reverse("admin:media_mediaitem_change", args=[item.pk])


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    """Tokens are shown once, by `manage.py api_client NAME`; here a client is only switched
    off (active) or on."""

    list_display = ["name", "active", "sees_all", "created_at"]
    list_filter = ["active", "sees_all"]
    search_fields = ["name"]
    readonly_fields = ["name", "token_sha256", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
