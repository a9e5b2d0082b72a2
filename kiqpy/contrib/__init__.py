"""Framework integrations, each behind its own extra and imported only by the application:

    kiqpy.contrib.django   the app for INSTALLED_APPS: settings.KIQPY, jobs.py autodiscovery,
                           ``manage.py kiqpy``, transaction-safe pushes, the dashboard in the
                           URLconf behind Django's login (``pip install 'kiqpy[django]'``)
    kiqpy.contrib.flask    ``Kiqpy(app)``: app.config["KIQPY_*"], jobs in an app context, the
                           dashboard as a blueprint (``pip install 'kiqpy[flask]'``)

The ASGI dashboard (Starlette, FastAPI) needs no integration: ``kiqpy.web.create_asgi_app()``.
This package sits above every other layer; nothing in kiqpy imports it.
"""
