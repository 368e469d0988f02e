from django.urls import path

from moderation.review import views

app_name = "review"

urlpatterns = [
    path("", views.review_next, name="next"),
    path("claim/", views.review_claim, name="claim"),
    path("undo/", views.review_undo, name="undo"),
    path("disagreements/", views.review_disagreements, name="disagreements"),
    path("mine/", views.review_mine, name="mine"),
    path("items/<uuid:uid>/gold/", views.item_gold, name="gold"),
    path("<uuid:uid>/decide/", views.review_decide, name="decide"),
    path("<uuid:uid>/skip/", views.review_skip, name="skip"),
    path("items/<uuid:uid>/", views.item_history, name="history"),
    path("items/<uuid:uid>/image/", views.item_image, name="image"),
]
