"""The product's URLs plus /bench/trivial: the cheapest Django view, as a baseline."""

from django.http import HttpRequest, JsonResponse
from django.urls import include, path


async def trivial(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/trivial", trivial),
    path("", include("config.urls")),
]
