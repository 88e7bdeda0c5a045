"""The operator console's FastAPI app, mounted by the plugin :mod:`pfi_airflow.console` at
``/pfi/`` in Airflow's api-server and shown in the UI by its menu entry ("Console PFI"), behind
Airflow's own login. (Only the api-server imports this package: ``plugins/.airflowignore`` keeps
Airflow's plugin loader, which every task process runs, from importing FastAPI for nothing.)

Server-rendered pages (Jinja2, French labels, a little vanilla JS) and a JSON API beside them
(``/pfi/api/…``), both one call into :mod:`pfi.flows.console`, which checks the operator's
rights again and writes the trail.

**Authentication**: every route depends on Airflow's ``get_user`` (the JWT of the UI's
``_token`` cookie, or a ``Bearer`` token from ``POST /auth/token``); a page asked without a
valid login redirects to the auth manager's login page, an API call answers 401.

**Rights**, asked of Airflow's auth manager (whichever it is: simple, FAB, Keycloak…), so that
the roles an installation already manages decide:

=============  ==========================================  ===========================
right          auth manager question                       simple auth manager role
=============  ==========================================  ===========================
``metadata``   may read DAG runs                           viewer and above
``replay``     may change task instances (clear = replay)  user and above
``content``    may read Connections (partners' secrets)    op and admin
``admin``      may change the configuration                op and admin
=============  ==========================================  ===========================

POST forms are same-origin only (the cookie is ``SameSite=Lax`` and the ``Origin`` header is
checked).
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit
from zoneinfo import ZoneInfo

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

log = logging.getLogger(__name__)

URL_PREFIX = "/pfi"
PARIS = ZoneInfo("Europe/Paris")
TEMPLATES = Path(__file__).with_name("templates")


# -- who acts ------------------------------------------------------------------------------------


def rights_of(user: Any) -> frozenset[str]:
    """The console's rights of an Airflow user, as its auth manager answers (module docstring)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

    from pfi.flows import console

    manager = get_auth_manager()
    rights = set()
    if manager.is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, user=user):
        rights.add(console.METADATA)
    if manager.is_authorized_dag(
        method="PUT", access_entity=DagAccessEntity.TASK_INSTANCE, user=user
    ):
        rights.add(console.REPLAY)
    if manager.is_authorized_connection(method="GET", user=user):
        rights.add(console.CONTENT)
    if manager.is_authorized_configuration(method="PUT", user=user):
        rights.add(console.ADMIN)
    return frozenset(rights)


async def _user(request: Request) -> Any:
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.security import HTTPBearer

    credentials = await HTTPBearer(auto_error=False)(request)
    return await get_user(request, None, credentials)


async def current_operator(request: Request) -> Any:
    """The operator behind the request (401 without a valid Airflow login)."""
    from pfi.flows.console import Operator

    user = await _user(request)
    # an auth manager may ask a remote service (Keycloak…): not on the event loop
    return Operator(name=user.get_name(), rights=await _off_loop(rights_of, user))


OperatorDep = Annotated[Any, Depends(current_operator)]


def current_ledger(request: Request) -> Any:
    """The ledger of the site's Connection (``pfi_ledger``), opened once per process; a test
    sets ``app.state.ledger``."""
    state = request.app.state
    if getattr(state, "ledger", None) is None:
        from pfi_airflow.hooks import LedgerHook

        try:
            from pfi.base.settings import load_settings

            conn_id = load_settings().ledger_connection_id
        except Exception:  # no settings file on this api-server: the default Connection
            conn_id = LedgerHook.default_conn_name
        state.ledger = LedgerHook(conn_id).get_conn()
    return state.ledger


LedgerDep = Annotated[Any, Depends(current_ledger)]


async def _off_loop(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``function`` (the ledger's blocking I/O) in a worker thread: an ``async`` route must not
    stall the api-server's event loop, which serves Airflow's own UI and API too."""
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(function, *args, **kwargs)


def _same_origin(request: Request) -> None:
    origin = request.headers.get("origin")
    if origin and urlsplit(origin).netloc != request.url.netloc:
        raise HTTPException(403, "cross-origin request refused")


# -- rendering -----------------------------------------------------------------------------------


def _when(value: Any) -> str:
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S")


def _ui_root() -> str:
    from airflow.configuration import conf

    return urlsplit(conf.get("api", "base_url", fallback="/") or "/").path.rstrip("/")


def task_url(task: Any) -> str | None:
    """The Airflow UI page of a trail step's task instance (its log is the page's first tab)."""
    if task is None:
        return None
    url = (
        f"{_ui_root()}/dags/{quote(task.dag_id, safe='')}/runs/{quote(task.run_id, safe='')}"
        f"/tasks/{quote(task.task_id, safe='')}"
    )
    return url + (f"/mapped/{task.map_index}" if task.map_index >= 0 else "")


def _environment() -> Any:
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), trim_blocks=True
    )
    env.filters["when"] = _when
    env.globals["task_url"] = task_url
    return env


_env: Any = None


def render(request: Request, name: str, status_code: int = 200, **values: Any) -> HTMLResponse:
    global _env
    if _env is None:
        _env = _environment()
    from pfi.flows import console

    values.setdefault("operator", None)
    html = _env.get_template(name).render(
        base=request.scope.get("root_path", URL_PREFIX).rstrip("/") or URL_PREFIX,
        labels=console,
        **values,
    )
    return HTMLResponse(html, status_code=status_code)


# -- the app ---------------------------------------------------------------------------------------

_FILTERS = (
    "unique_id",
    "control_id",
    "message_id",
    "ins",
    "since",
    "until",
    "source",
    "finess_geo",
    "channel",
    "status",
    "kind",
)


def _criteria(values: Any) -> Any:
    from datetime import timedelta

    from pfi.flows.console import parse_day
    from pfi.ledger.console import Search

    given = {k: (values.get(k) or "").strip() or None for k in _FILTERS}
    until = parse_day(given.pop("until"))
    return Search(
        **{k: v for k, v in given.items() if k != "since"},
        since=parse_day(given["since"]),
        until=until + timedelta(days=1) if until else None,
    )


def _site_stats() -> tuple[list[str], int]:
    """The site's FINESS géographiques and ``[stats] previous_years`` (none and 1 without a
    settings file on this api-server)."""
    try:
        from pfi.base.settings import load_settings
        from pfi.flows.stats import StatsConfig

        settings = load_settings()
        return [g.finess for g in settings.site.finess_geo], StatsConfig.from_settings(
            settings
        ).previous_years
    except Exception:
        return [], 1


def _no_identity_in_url(request: Request) -> None:
    if request.query_params.get("ins"):
        raise HTTPException(
            400, "l'INS se recherche par le formulaire (POST), jamais dans l'adresse"
        )


def _int(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        raise HTTPException(400, "nombre attendu") from None


def create_app() -> FastAPI:
    """The console's FastAPI app (mounted by Airflow at :data:`URL_PREFIX`)."""
    from pfi.flows import console

    app = FastAPI(title="Console PFI", docs_url=None, redoc_url=None, openapi_url=None)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        api = request.url.path.startswith(f"{request.scope.get('root_path', '')}/api")
        if exc.status_code in (401, 403) and not api and "Invalid JWT" in str(exc.detail):
            exc = HTTPException(401, exc.detail)
        if exc.status_code == 401 and not api and request.method == "GET":
            from airflow.api_fastapi.app import get_auth_manager

            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return RedirectResponse(get_auth_manager().get_url_login(next_url=target), 303)
        if api:
            return JSONResponse({"detail": exc.detail}, exc.status_code)
        return render(request, "error.html", exc.status_code, message=str(exc.detail))

    @app.exception_handler(console.Forbidden)
    async def _forbidden(request: Request, exc: console.Forbidden) -> Response:
        hint = " (plus de 200 envois à la fois)" if exc.right == console.ADMIN else ""
        raise_it = HTTPException(403, f"droit requis : {exc.right}{hint}")
        return await _http_error(request, raise_it)

    @app.exception_handler(LookupError)
    async def _missing(request: Request, exc: LookupError) -> Response:
        return await _http_error(request, HTTPException(404, "introuvable"))

    @app.exception_handler(ValueError)
    async def _invalid(request: Request, exc: ValueError) -> Response:
        return await _http_error(request, HTTPException(400, str(exc)))

    # -- pages --------------------------------------------------------------------------------

    @app.api_route("/", methods=["GET", "POST"], response_class=HTMLResponse)
    async def search_page(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Response:
        """The search; POSTed by its form, so that an INS never appears in a URL (access logs
        keep URLs); a GET with the filters in its query works for everything else."""
        params: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            _same_origin(request)
            params.update({k: v for k, v in (await request.form()).items() if isinstance(v, str)})
        else:
            _no_identity_in_url(request)
        what = params.get("what") or "deliveries"
        reference = (params.get("ref") or "").strip()
        if reference:
            found = await _off_loop(console.find, ledger, operator, reference)
            if found is not None:
                return RedirectResponse(
                    f"{request.scope.get('root_path', '')}/documents/{found}", 303
                )
        page = await _off_loop(
            console.search,
            ledger,
            operator,
            _criteria(params),
            what=what,
            before_id=_int(params.get("before")),
            limit=_int(params.get("size")) or 50,
        )
        keep = {k: v for k, v in params.items() if k not in ("before", "ref") and v}
        return render(
            request,
            "search.html",
            operator=operator,
            page=page,
            params=keep,
            next_before=page["next_before"],
            not_found=reference or None,
        )

    @app.get("/documents/{document_id}", response_class=HTMLResponse)
    def timeline_page(
        request: Request, document_id: int, operator: OperatorDep, ledger: LedgerDep
    ) -> Response:
        return render(
            request,
            "timeline.html",
            operator=operator,
            t=console.timeline(ledger, operator, document_id),
            done=request.query_params.get("done"),
        )

    @app.get("/documents/{document_id}/identity", response_class=HTMLResponse)
    def identity_page(
        request: Request, document_id: int, operator: OperatorDep, ledger: LedgerDep
    ) -> Response:
        shown = console.identity(ledger, operator, document_id)
        return render(
            request, "identity.html", operator=operator, document_id=document_id, identity=shown
        )

    @app.get("/items/{item_id}/original", response_class=HTMLResponse)
    def original_page(
        request: Request, item_id: int, operator: OperatorDep, ledger: LedgerDep
    ) -> Response:
        shown = console.original(ledger, operator, item_id)
        return render(request, "original.html", operator=operator, original=shown)

    @app.get("/audit", response_class=HTMLResponse)
    def audit_page(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Response:
        page = console.audit(ledger, operator, before_id=_int(request.query_params.get("before")))
        done = request.query_params.get("done")
        return render(request, "audit.html", operator=operator, page=page, done=done)

    @app.post("/replay-matching", response_class=HTMLResponse)
    async def replay_matching_form(
        request: Request, operator: OperatorDep, ledger: LedgerDep
    ) -> Response:
        """Replay every delivery of a search: first the plan (what each would become), then,
        confirmed with a reason (and the duplicates' box), the replay."""
        _same_origin(request)
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        criteria = _criteria(form)
        if form.get("confirm") != "1":
            plan = await _off_loop(
                console.replay_matching, ledger, operator, criteria, reason="", dry_run=True
            )
            keep = {k: v for k, v in form.items() if k in _FILTERS and v}
            return render(request, "replay_plan.html", operator=operator, plan=plan, params=keep)
        done = await _off_loop(
            console.replay_matching,
            ledger,
            operator,
            criteria,
            reason=form.get("reason") or "",
            force=form.get("force") == "on",
        )
        summary = {k: v for k, v in done.items() if v}
        root = request.scope.get("root_path", "")
        return RedirectResponse(f"{root}/audit?{urlencode({'done': _summary_text(summary)})}", 303)

    @app.post("/actions", response_class=HTMLResponse)
    async def action_form(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Response:
        """The forms of the timeline and of the search: replay, hold, release."""
        _same_origin(request)
        form = await request.form()
        ids = [int(v) for v in form.getlist("delivery") if str(v).isdigit()]
        action = form.get("action")
        reason = str(form.get("reason") or "")
        back = str(form.get("back") or "")
        if action == "replay":
            done = await _off_loop(
                console.replay,
                ledger,
                operator,
                ids,
                reason=reason,
                force=form.get("force") == "on",
            )
            summary = {k: v for k, v in done.items() if v}
        elif action in ("hold", "release"):
            changed = await _off_loop(
                console.hold_or_release, ledger, operator, ids, action, reason=reason
            )
            summary = {action: changed}
        else:
            raise HTTPException(400, "action inconnue")
        root = request.scope.get("root_path", "")
        target = back if back.startswith("/documents/") else "/audit"
        return RedirectResponse(
            f"{root}{target}?{urlencode({'done': _summary_text(summary)})}", 303
        )

    @app.get("/indicateurs", response_class=HTMLResponse)
    def dashboard_page(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Response:
        from pfi.flows import dashboard

        finess, _ = _site_stats()
        figures = dashboard.dashboard(ledger, operator, dashboard.paris_today(), site_finess=finess)
        period = request.query_params.get("period") or "month"
        if period not in dict(dashboard.PERIODS):
            raise HTTPException(400, "période inconnue")
        return render(request, "dashboard.html", operator=operator, d=figures, period=period)

    @app.get("/indicateurs.csv")
    def dashboard_csv(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Response:
        from pfi.flows import dashboard
        from pfi.flows.stats import parse_month

        _, years = _site_stats()
        finess = (request.query_params.get("finess") or "").strip()
        month = parse_month(request.query_params.get("month") or "")
        name, data = dashboard.monthly_csv(ledger, operator, finess, month, previous_years=years)
        return Response(
            data,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @app.get("/api/dashboard")
    def api_dashboard(operator: OperatorDep, ledger: LedgerDep) -> Any:
        from pfi.flows import dashboard

        finess, _ = _site_stats()
        return _json(
            dashboard.dashboard(ledger, operator, dashboard.paris_today(), site_finess=finess)
        )

    # -- JSON API -----------------------------------------------------------------------------

    @app.get("/api/me")
    def api_me(operator: OperatorDep) -> dict[str, Any]:
        return {"name": operator.name, "rights": sorted(operator.rights)}

    @app.api_route("/api/search", methods=["GET", "POST"])
    async def api_search(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Any:
        """The search: criteria in the query (GET), or in a JSON body (POST: the only way to
        search by INS, which must never be in a URL)."""
        params: dict[str, Any] = dict(request.query_params)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.json()).items() if v is not None})
        else:
            _no_identity_in_url(request)
        return _json(
            await _off_loop(
                console.search,
                ledger,
                operator,
                _criteria(params),
                what=params.get("what") or "deliveries",
                before_id=_int(params.get("before")),
                limit=_int(params.get("size")) or 50,
            )
        )

    @app.get("/api/documents/{document_id}")
    def api_timeline(document_id: int, operator: OperatorDep, ledger: LedgerDep) -> Any:
        found = console.timeline(ledger, operator, document_id)
        for step in found["steps"]:
            step["task_url"] = task_url(step.pop("task"))
        return _json(found)

    @app.get("/api/documents/{document_id}/identity")
    def api_identity(document_id: int, operator: OperatorDep, ledger: LedgerDep) -> Any:
        return _json(console.identity(ledger, operator, document_id))

    @app.get("/api/items/{item_id}/original")
    def api_original(item_id: int, operator: OperatorDep, ledger: LedgerDep) -> Any:
        return _json(console.original(ledger, operator, item_id))

    @app.get("/api/audit")
    def api_audit(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Any:
        before = _int(request.query_params.get("before"))
        return _json(console.audit(ledger, operator, before_id=before))

    @app.post("/api/replay/plan")
    async def api_replay_plan(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Any:
        body = await request.json()
        if "deliveries" in body:
            return await _off_loop(
                console.plan_replay, ledger, operator, [int(i) for i in body["deliveries"]]
            )
        return await _off_loop(
            console.replay_matching,
            ledger,
            operator,
            _criteria(body.get("search") or {}),
            reason="",
            dry_run=True,
        )

    @app.post("/api/replay")
    async def api_replay(request: Request, operator: OperatorDep, ledger: LedgerDep) -> Any:
        _same_origin(request)
        body = await request.json()
        reason, force = str(body.get("reason") or ""), bool(body.get("force"))
        if "deliveries" in body:
            ids = [int(i) for i in body["deliveries"]]
            return await _off_loop(
                console.replay, ledger, operator, ids, reason=reason, force=force
            )
        return await _off_loop(
            console.replay_matching,
            ledger,
            operator,
            _criteria(body.get("search") or {}),
            reason=reason,
            force=force,
        )

    @app.post("/api/{what}")
    async def api_hold(
        what: str, request: Request, operator: OperatorDep, ledger: LedgerDep
    ) -> Any:
        if what not in ("hold", "release"):
            raise HTTPException(404, "introuvable")
        _same_origin(request)
        body = await request.json()
        ids = [int(i) for i in body.get("deliveries") or []]
        changed = await _off_loop(
            console.hold_or_release,
            ledger,
            operator,
            ids,
            what,
            reason=str(body.get("reason") or ""),
        )
        return {"changed": changed}

    return app


_SUMMARY_LABELS = {
    "attempt": "nouvelle tentative",
    "forced": "rejeu forcé (nouvel envoi)",
    "duplicate": "non rejoué : déjà envoyé, confirmer le doublon",
    "waiting": "déjà en file",
    "hold": "mis en attente",
    "release": "libéré",
}


def _summary_text(summary: dict[str, list[int]]) -> str:
    parts = [
        f"{_SUMMARY_LABELS.get(k, k)} : {', '.join(map(str, v)) or 'aucun'}"
        for k, v in summary.items()
    ]
    return " · ".join(parts) or "aucun changement"


def _json(value: Any) -> Any:
    from fastapi.encoders import jsonable_encoder

    return jsonable_encoder(value)
