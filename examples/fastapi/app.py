"""The web side of the fastapi example: a FastAPI app that enqueues with kiqpy's async client
(``await FetchFeed.aperform_async(url)``: redis.asyncio, so the request's event loop never
blocks on Redis). Run it from the repo root, with REDIS_URL set:

    python -m examples.fastapi.app --port 8000

    curl -X POST 'http://127.0.0.1:8000/feeds?url=https://example.com/'
    curl 'http://127.0.0.1:8000/feeds?url=https://example.com/'
"""

from __future__ import annotations

import argparse

from fastapi import FastAPI

import kiqpy
from examples.fastapi.jobs import FetchFeed, result_key

app = FastAPI(title="kiqpy fastapi example")


@app.post("/feeds", status_code=202)
async def fetch_later(url: str) -> dict[str, str | None]:
    """Enqueue a fetch of ``url``; answers at once with the job's id."""
    jid = await FetchFeed.aperform_async(url)
    return {"jid": jid, "url": url}


@app.get("/feeds")
async def fetched(url: str) -> dict[str, str]:
    """What the last fetch of ``url`` recorded ({} until a worker has run it)."""
    found = await kiqpy.aredis().hgetall(result_key(url))
    return {key.decode(): value.decode() for key, value in found.items()}


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="The fastapi example's web app.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    options = parser.parse_args(argv)
    uvicorn.run(app, host=options.host, port=options.port)


if __name__ == "__main__":
    main()
