"""The dashboard as a Django view, behind Django's auth.

CSRF: the dashboard keeps its own protection (a per-session token in the ``kiqpy_csrf``
cookie repeated in every form, and POSTs refused when the browser says they come from another
site; see :mod:`kiqpy.web.security`), so the view is exempt from Django's CsrfViewMiddleware,
whose token the dashboard's forms do not carry. Login is Django's: no second login.
"""

from __future__ import annotations

from django.apps import apps
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.views.decorators.csrf import csrf_exempt

from kiqpy.contrib.django.apps import KiqpyConfig
from kiqpy.contrib.mount import environ_below


def _app() -> KiqpyConfig:
    config = apps.get_app_config("kiqpy")
    assert isinstance(config, KiqpyConfig)
    return config


def allowed(request: HttpRequest) -> bool:
    """Whether the request's user may use the dashboard (``KIQPY["dashboard_access"]``)."""
    user = getattr(request, "user", None)
    if user is None:
        raise ImproperlyConfigured("the kiqpy dashboard needs django.contrib.auth's "
                                   "AuthenticationMiddleware in settings.MIDDLEWARE")
    rule = _app().settings.dashboard_access
    if rule is None:
        return bool(user.is_active and user.is_staff)
    if isinstance(rule, str):
        return bool(user.is_active and user.has_perm(rule))
    return bool(rule(request))


@csrf_exempt
def dashboard(request: HttpRequest, subpath: str = "") -> HttpResponse:
    """Every page of the dashboard, below the path ``urls.py`` is included at."""
    if not allowed(request):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return HttpResponseForbidden("You may not use the kiqpy dashboard.\n",
                                     content_type="text/plain; charset=utf-8")
    below = request.path_info
    mount = below[:len(below) - len(subpath)] if subpath else below
    script = (request.META.get("SCRIPT_NAME") or "").rstrip("/") + mount
    environ = environ_below(request.META, script, subpath, request.method or "GET",
                            request.body, request.scheme or "http")
    answer = _app().dashboard().serve(environ)
    response = HttpResponse(answer.body, status=answer.status)
    for name, value in answer.headers:
        if name.lower() == "set-cookie":
            response.cookies.load(value)  # Django sends its cookies from here
        elif name.lower() != "content-length":
            response.headers[name] = value
    return response
