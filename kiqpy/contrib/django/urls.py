"""``path("kiqpy/", include("kiqpy.contrib.django.urls"))`` in the project's URLconf."""

from __future__ import annotations

from django.urls import re_path

from kiqpy.contrib.django.views import dashboard

app_name = "kiqpy"
urlpatterns = [
    re_path(r"^(?P<subpath>.*)\Z", dashboard, name="dashboard"),
]
