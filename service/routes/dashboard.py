"""The dashboard: `GET /` and its static assets. They hold no data (every data call of the page
goes to the /v1 routes with the user's key), so they are public."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException, Response

router = APIRouter(tags=["dashboard"], include_in_schema=False)

# The only files served: a fixed list, so no request path can reach anything else.
ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}


def _read(name: str) -> bytes:
    return (resources.files("strideflow.service") / "static" / name).read_bytes()


@router.get("/")
def index() -> Response:
    """The dashboard page (asks for an API key, then calls the public /v1 routes)."""
    return Response(_read("index.html"), media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/static/{name}")
def asset(name: str) -> Response:
    """A dashboard asset (script or stylesheet)."""
    if name not in ASSETS:
        raise HTTPException(404, detail=f"no static file {name!r}")
    return Response(_read(name), media_type=ASSETS[name], headers=_HEADERS)
