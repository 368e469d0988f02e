from django.urls import path

from moderation.review import grid_views, views

app_name = "review"

urlpatterns = [
    path("", views.review_next, name="next"),
    path("claim/", views.review_claim, name="claim"),
    path("grid/", grid_views.grid_page, name="grid"),
    path("grid/claim/", grid_views.grid_claim_view, name="grid_claim"),
    path("grid/decide/", grid_views.grid_decide_view, name="grid_decide"),
    path("grid/release/", grid_views.grid_release_view, name="grid_release"),
    path("undo/", views.review_undo, name="undo"),
    path("disagreements/", views.review_disagreements, name="disagreements"),
    path("mine/", views.review_mine, name="mine"),
    path("items/<uuid:uid>/gold/", views.item_gold, name="gold"),
    path("<uuid:uid>/decide/", views.review_decide, name="decide"),
    path("<uuid:uid>/skip/", views.review_skip, name="skip"),
    path("items/<uuid:uid>/", views.item_history, name="history"),
    path("items/<uuid:uid>/image/", views.item_image, name="image"),
]
