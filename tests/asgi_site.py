"""A Starlette app with the dashboard mounted natively at /kiqpy (tests/test_web_asgi.py runs
it under uvicorn): ``uvicorn tests.asgi_site:app`` with REDIS_URL set."""

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from kiqpy.config import Config
from kiqpy.web import create_asgi_app


async def home(request: object) -> PlainTextResponse:
    return PlainTextResponse("the app's own page")


app = Starlette(routes=[Route("/", home), Mount("/kiqpy", app=create_asgi_app(Config.from_env()))])
