"""Who may open the review pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django_htmx.http import HttpResponseClientRedirect

MODERATORS = "moderators"
ADMINS = "admins"


def is_moderator(user) -> bool:
    """Moderators review; admins can do everything moderators can, and so can superusers."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name__in=(MODERATORS, ADMINS)).exists()


def signed_out(request: HttpRequest) -> HttpResponse:
    """To the login page, and back here after it. A request htmx sent from a page (a key on the
    review page after the session ended) moves the whole page there, back to that page after:
    a redirect it followed itself would put the login form inside the panel."""
    htmx = getattr(request, "htmx", None)
    if htmx and htmx.current_url_abs_path:
        login = redirect_to_login(htmx.current_url_abs_path)
        return HttpResponseClientRedirect(login["Location"])
    return redirect_to_login(request.get_full_path())


def moderator_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous visitors go to the login page; a signed-in non-moderator gets 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return signed_out(request)
        if not is_moderator(request.user):
            raise PermissionDenied("the review pages are for moderators")
        return view(request, *args, **kwargs)

    return wrapper


def is_admin(user) -> bool:
    """Admins manage models, read the dashboards and adjudicate; so do superusers. An admin's
    decision is always final."""
    if not user.is_authenticated or not user.is_active:
        return False
    return user.is_superuser or user.groups.filter(name=ADMINS).exists()


def admin_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous visitors go to the login page; a signed-in non-admin (a moderator) gets 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not request.user.is_authenticated:
            return signed_out(request)
        if not is_admin(request.user):
            raise PermissionDenied("this page is for admins")
        return view(request, *args, **kwargs)

    return wrapper
