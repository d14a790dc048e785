"""The Starlette app of ``covplan serve``: JSON API (docs/serve.md), server-sent events, the page.

Every asset is served from the package or from ``xstatic-leaflet`` (the same Leaflet that
``map.html`` inlines): the page works with no internet. With a token, every request must carry it
(``?token=`` or the ``X-Covplan-Token`` header); otherwise it is refused with 403.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from coverage import access, categories, network, pipeline, settings
from coverage.incremental import concat_snapped
from coverage.errors import InputError
from coverage.serve.state import Session

STATIC = Path(str(resources.files("coverage.serve") / "static"))


def leaflet_dir() -> Path:
    """Folder of the installed ``xstatic-leaflet`` files (leaflet.js, leaflet.css, images/)."""
    import xstatic.pkg.leaflet as xl

    return Path(xl.BASE_DIR)


def _error(err: InputError, status: int = 400) -> JSONResponse:
    p = err.problem
    return JSONResponse({"error": {"code": p.code, "zh": p.zh, "en": p.en, "field": p.field,
                                   "message": f"{p.zh} / {p.en}"}}, status_code=status)


def _bad_json() -> InputError:
    return InputError("请求体不是有效的 JSON。", "the request body is not valid JSON.", field="body", code="bad_json")


class TokenGuard:
    """Refuse (403) every request that lacks the session token (only when a token is set)."""

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse HTTP requests without the token (query ``token=`` or header), pass the rest on."""
        if scope["type"] == "http" and self.token:
            req = Request(scope)
            given = req.query_params.get("token") or req.headers.get("x-covplan-token") or ""
            if not secrets.compare_digest(given, self.token):
                resp = JSONResponse({"error": {"code": "token", "zh": "缺少或错误的访问令牌（token）。",
                                               "en": "missing or wrong access token.",
                                               "message": "缺少或错误的访问令牌（token）。 / missing or wrong access token."}},
                                    status_code=403)
                await resp(scope, receive, send)
                return
        await self.app(scope, receive, send)


class Layers:
    """Map layers of the session, cached per (variant, version)."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self._cache: dict[Any, Any] = {}
        self._lock = threading.Lock()

    def static(self) -> dict[str, Any]:
        """Units, candidates, the 15 km circle, the catalogue of services and types, the bounds."""
        if "static" in self._cache:
            return self._cache["static"]
        s = self.s
        inp = s.inputs
        units = inp.units.to_crs(4326)
        units = units.assign(geometry=units.geometry.simplify(0.0002))
        ugj = json.loads(units[["code", "name", "geometry"]].to_json())
        cands = None
        if inp.candidates is not None and len(inp.candidates):
            c = inp.candidates.to_crs(4326)
            cands = [{"cid": str(r.cid), "name": str(r.name), "kind": str(getattr(r, "kind", "") or ""),
                      "lon": round(float(g.x), 6), "lat": round(float(g.y), 6)}
                     for r, g in zip(c.itertuples(index=False), c.geometry)]
        urc = None
        rule = inp.preset.urban_rural()
        if rule is not None and inp.seat is not None:
            urc = self._circle(s.current_result(), [rule])  # the seat: the same in every variant
        b = inp.boundary.to_crs(4326).total_bounds
        services = {k: {"label": categories.service_label(k),
                        "ftypes": [{"key": f, "label": categories.FTYPES[f].label,
                                    "unit": categories.FTYPES[f].capacity_unit} for f in categories.ftypes_of(k)]}
                    for k in categories.SERVICES}
        out = {"scenario": inp.scenario.name, "synthetic": inp.synthetic, "units": ugj, "candidates": cands,
               "urban_rural_circle": urc, "bounds": [[float(b[1]), float(b[0])], [float(b[3]), float(b[2])]],
               "services": services, "seat": list(inp.seat) if inp.seat is not None else None}
        self._cache["static"] = out
        return out

    def _circle(self, res: pipeline.RunResult, rules: list[Any]) -> dict | None:
        """Service-circle polygon(s) of ``rules`` as GeoJSON (WGS-84), as ``pipeline.circle_polygons`` draws them."""
        import geopandas as gpd

        from coverage.report.circles import reached_area

        model = res.model
        inp = model.inputs
        live = self.s.variant.live
        polys = []
        for rule in rules:
            mode = pipeline.mode_of(rule, inp.scenario)
            g = model.graphs[mode]
            if getattr(rule, "ftypes", None) is None:  # the 15 km circle: from the seat, a place (no leg cap)
                assert inp.seat is not None  # the 15 km rule is active only with a seat
                seat = gpd.GeoSeries(gpd.points_from_xy([inp.seat[0]], [inp.seat[1]]), crs="EPSG:4326")
                sources = access.snap(g, seat, max_leg_m=float("inf"))
            else:
                keys = [k for k, f in live.ftype.items() if f in rule.ftypes]
                if not keys:
                    continue
                sources = concat_snapped([live.snaps[mode][k] for k in keys], keys)
            t = access.node_times(g, sources, limit=rule.threshold, weight=rule.unit)
            seg = network.segment_index(g)
            poly = reached_area(g.x, g.y, g.indptr, g.indices, t, threshold=rule.threshold, segments=(seg.a, seg.b))
            if not poly.is_empty:
                polys.append(poly)
        if not polys:
            return None
        gs = gpd.GeoSeries(polys, crs=model.inputs.crs).to_crs(4326).simplify(0.0002)
        return json.loads(gs.to_json())

    def service(self, service: str) -> dict[str, Any]:
        """Uncovered people (300 m blocks) and the service circle of one service, current variant."""
        s = self.s
        if service not in categories.SERVICES:
            raise InputError(f"未知服务类别 {service}，可选：{', '.join(categories.SERVICES)}。",
                             f"unknown service {service!r}; use one of {', '.join(categories.SERVICES)}.",
                             field="service", code="unknown_service")
        key = (s.current, s.version, service)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        res = s.current_result()
        unc = pipeline.uncovered_cells(res, block_m=settings.MAP_BLOCK_M)
        unc = unc[unc["service"] == service].to_crs(4326)
        pts = [[round(float(g.y), 6), round(float(g.x), 6), round(float(p), 1), str(n)]
               for g, p, n in zip(unc.geometry, unc["pop"], unc["unit_name"])]
        rules = [r for r in res.model.inputs.preset.active_circles() if r.service == service]
        out = {"service": service, "uncovered": pts, "circle": self._circle(res, rules), "version": key[1]}
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k == "static" or k[1] == s.version}
            self._cache[key] = out
        return out


def create_app(session: Session, token: str | None = None, lang: str = "zh", tiles: str = "none") -> ASGIApp:  # noqa: C901 - issue 11: to narrow/split
    """The ASGI app of a session (wrapped in :class:`TokenGuard` when ``token`` is set).

    ``tiles`` (``none`` by default: no request leaves the machine) adds a basemap of
    :data:`coverage.report.map.TILES` under the overlays (drawn in WGS-84 as given).
    """
    from coverage.report.map import TILES

    tile = None if tiles == "none" else {"url": TILES[tiles][0][0], "attribution": TILES[tiles][0][1],
                                          "subdomains": TILES[tiles][0][2]}
    layers = Layers(session)
    events: list[tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = []
    events_lock = threading.Lock()

    def broadcast(msg: dict) -> None:
        with events_lock:
            targets = list(events)
        for loop, q in targets:
            loop.call_soon_threadsafe(q.put_nowait, msg)

    session.listeners.append(broadcast)

    async def body_of(request: Request) -> Any:
        try:
            return json.loads(await request.body() or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise _bad_json() from None

    def guarded(fn):  # noqa: ANN001, ANN202 - a small decorator for the endpoints
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except InputError as err:
                return _error(err, 404 if err.problem.code in ("unknown_variant",) else 400)
        return endpoint

    async def run(fn, *args):  # noqa: ANN001, ANN002, ANN202 - work off the event loop
        return await asyncio.to_thread(fn, *args)

    async def index(request: Request) -> Response:
        html = (STATIC / "index.html").read_text(encoding="utf-8")
        cfg = {"token": token or "", "lang": lang, "tiles": tile}
        html = html.replace("__CONFIG__", json.dumps(cfg)).replace("__TOKEN__", token or "")
        return Response(html, media_type="text/html; charset=utf-8")

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        base = leaflet_dir() if request.path_params["where"] == "leaflet" else STATIC
        p = (base / name).resolve()
        if not p.is_relative_to(base.resolve()) or not p.is_file():
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(p)

    @guarded
    async def summary(request: Request) -> Response:
        name = request.query_params.get("variant")
        if name and name not in session.variants:
            raise session._unknown_variant(name)
        return JSONResponse(await run(session.summary, name))

    @guarded
    async def changes(request: Request) -> Response:
        return JSONResponse(await run(session.apply, await body_of(request)))

    @guarded
    async def undo(request: Request) -> Response:
        return JSONResponse(await run(session.undo))

    @guarded
    async def redo(request: Request) -> Response:
        return JSONResponse(await run(session.redo))

    @guarded
    async def reset(request: Request) -> Response:
        return JSONResponse(await run(session.reset))

    @guarded
    async def facilities(request: Request) -> Response:
        return JSONResponse(await run(session.facilities_geojson))

    @guarded
    async def static_layers(request: Request) -> Response:
        return JSONResponse(await run(layers.static))

    @guarded
    async def service_layers(request: Request) -> Response:
        return JSONResponse(await run(layers.service, request.path_params["service"]))

    @guarded
    async def checks(request: Request) -> Response:
        return JSONResponse(await run(session.checks))

    @guarded
    async def best(request: Request) -> Response:
        b = await body_of(request)
        if not isinstance(b, dict):
            raise _bad_json()
        props = await run(session.best_sites, str(b.get("service", "")), b.get("n", 3), int(b.get("generate", 0) or 0))
        return JSONResponse({"proposals": props})

    @guarded
    async def variants(request: Request) -> Response:
        if request.method == "POST":
            b = await body_of(request)
            if not isinstance(b, dict):
                raise _bad_json()
            if b.get("select"):
                await run(session.select, str(b["select"]))
            else:
                await run(session.new_variant, str(b.get("name", "")), b.get("copy_from"))
        return JSONResponse({"variants": list(session.variants), "current": session.current})

    @guarded
    async def compare(request: Request) -> Response:
        a, b = request.query_params.get("a", ""), request.query_params.get("b", "")
        for n in (a, b):
            if n not in session.variants:
                raise session._unknown_variant(n)
        return JSONResponse({"a": await run(session.summary, a), "b": await run(session.summary, b)})

    @guarded
    async def plan_yaml(request: Request) -> Response:
        name = request.query_params.get("variant")
        if name and name not in session.variants:
            raise session._unknown_variant(name)
        text = await run(session.plan_yaml, name)
        return Response(text, media_type="application/yaml; charset=utf-8")

    @guarded
    async def save(request: Request) -> Response:
        p = await run(session.save_plan)
        return JSONResponse({"path": str(p)})

    @guarded
    async def export(request: Request) -> Response:
        out, files = await run(session.export)
        return JSONResponse({"folder": str(out.resolve()), "files": files, "plan": str(session.plan_path())})

    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "version": session.version})

    async def stream(request: Request) -> Response:
        q: asyncio.Queue = asyncio.Queue()
        item = (asyncio.get_running_loop(), q)
        with events_lock:
            events.append(item)

        async def gen():  # noqa: ANN202
            try:
                yield f"data: {json.dumps({'type': 'hello', 'version': session.version})}\n\n"
                while True:
                    try:
                        msg = await asyncio.wait_for(q.get(), timeout=15)
                        yield f"data: {json.dumps(msg, ensure_ascii=False)}\n\n"
                    except TimeoutError:
                        yield ": keep-alive\n\n"
            finally:
                with events_lock:
                    if item in events:
                        events.remove(item)

        return StreamingResponse(gen(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    routes = [
        Route("/", index), Route("/assets/{where:str}/{name:path}", asset),
        Route("/api/health", health), Route("/api/summary", summary),
        Route("/api/changes", changes, methods=["POST"]), Route("/api/undo", undo, methods=["POST"]),
        Route("/api/redo", redo, methods=["POST"]), Route("/api/reset", reset, methods=["POST"]),
        Route("/api/facilities", facilities), Route("/api/static", static_layers),
        Route("/api/layers/{service:str}", service_layers), Route("/api/checks", checks),
        Route("/api/best", best, methods=["POST"]), Route("/api/variants", variants, methods=["GET", "POST"]),
        Route("/api/compare", compare), Route("/api/plan.yaml", plan_yaml),
        Route("/api/save", save, methods=["POST"]), Route("/api/export", export, methods=["POST"]),
        Route("/api/events", stream),
    ]
    return TokenGuard(Starlette(routes=routes), token)


def start_server(app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> tuple[Any, threading.Thread, int]:
    """Run ``app`` on uvicorn in a background thread; return ``(server, thread, port)`` once it listens.

    ``port=0`` takes a free port. Stop with ``server.should_exit = True; thread.join()``.
    """
    import socket
    import time

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    return server, thread, port
