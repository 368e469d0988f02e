from django.urls import path

from moderation.model_audit import views

app_name = "model_audit"

urlpatterns = [
    path("", views.audit_index, name="index"),
    path("start/", views.audit_start, name="start"),
    path("audit/", views.audit_page, name="audit"),
    path("claim/", views.audit_claim, name="claim"),
    path("items/<uuid:uid>/decide/", views.audit_decide_item, name="decide"),
    path("items/<uuid:uid>/skip/", views.audit_skip_item, name="skip"),
    path("figures/", views.audit_figures, name="figures"),
    path("figures/counts.csv", views.audit_counts_csv, name="counts_csv"),
    path("figures/items.csv", views.audit_items_csv, name="items_csv"),
]
