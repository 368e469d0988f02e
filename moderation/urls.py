from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Browsers ask for /favicon.ico where a page names no icon (the Django admin's pages, a
    CSV or JSON answer opened in a tab). A temporary redirect: in production the static URL
    carries the file's hash, which changes with it."""
    return HttpResponseRedirect(static("favicon.svg"))


urlpatterns = [
    path("", RedirectView.as_view(pattern_name="review:next"), name="home"),
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(redirect_authenticated_user=True),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("review/", include("moderation.review.urls")),
    path("dashboards/", include("moderation.dashboards.urls")),
    path("training/", include("moderation.training.urls")),
    path("audit/", include("moderation.audit.urls")),
    path("model-audit/", include("moderation.model_audit.urls")),
    path("api/v1/", include("moderation.media.urls")),
]

# The site's error pages (moderation/errors.py); paths under /api/ keep the API's JSON errors.
handler403 = "moderation.errors.permission_denied"
handler404 = "moderation.errors.page_not_found"
handler500 = "moderation.errors.server_error"
