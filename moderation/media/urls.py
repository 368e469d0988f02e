from django.urls import path, re_path
from drf_spectacular.renderers import OpenApiJsonRenderer, OpenApiYamlRenderer
from drf_spectacular.views import SpectacularAPIView

from moderation.media import api

app_name = "api"

# JSON first: the schema, and the 401 a client without a token gets, are JSON like the rest.
schema = SpectacularAPIView.as_view(renderer_classes=[OpenApiJsonRenderer, OpenApiYamlRenderer])

urlpatterns = [
    path("items/", api.items, name="items"),
    path("items/<uuid:uid>/", api.item_detail, name="item"),
    path("rate/", api.rate, name="rate"),
    path("schema/", schema, name="schema"),
    # Anything else under /api/v1/ answers the API's JSON 404, not the site's HTML page.
    re_path(r"^(?P<path>.*)$", api.not_found),
]
