from django.urls import include, path

urlpatterns = [
    path("kiqpy/", include("kiqpy.contrib.django.urls")),
]
