"""kiqpy in a Django project (``pip install 'kiqpy[django]'``).

settings.py::

    INSTALLED_APPS = [..., "kiqpy.contrib.django"]
    KIQPY = {"redis_url": "redis://localhost:6379/0", "namespace": "shop"}  # Config fields

urls.py::

    path("kiqpy/", include("kiqpy.contrib.django.urls"))   # staff only, Django's login

Then ``python manage.py kiqpy`` runs a worker with every installed app's ``jobs.py`` loaded
(``manage.py kiqpy web``, ``manage.py kiqpy stats`` and the other ``kiqpy`` commands read the
same settings). Inside ``transaction.atomic()`` a push waits for the commit and is dropped on
a rollback (``KIQPY["transactional"]``, default True; per push ``Job.set(on_commit=...)``).

    apps.py        the AppConfig: settings.KIQPY -> kiqpy.configure, the on-commit deferral,
                   the connection middleware, jobs.py autodiscovery
    settings.py    reading and checking settings.KIQPY
    transaction.py the "push now or at the commit" hook (kiqpy.Config.defer_push)
    middleware.py  close_old_connections around each job (server middleware)
    views.py, urls.py   the dashboard behind Django's auth
    management/commands/kiqpy.py   ``manage.py kiqpy ...``
"""
