from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="review:next"), name="home"),
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
