"""The operator console's Airflow plugin: its FastAPI app at ``/pfi/`` in the api-server and
its entry in the UI's menu (Browse → "Console PFI", the page ``/plugin/pfi-console``).

Airflow's plugin loader imports this file in every process that loads plugins, every task
process included: it stays light, and the app (:mod:`pfi_airflow.console_web.app`, FastAPI,
Jinja2, the flows) is built on the api-server's first request to it.
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/pfi"


class LazyApp:
    """An ASGI app that builds the console's FastAPI app on its first call."""

    def __init__(self) -> None:
        self._app: Any = None

    def get(self) -> Any:
        if self._app is None:
            from pfi_airflow.console_web.app import create_app

            self._app = create_app()
        return self._app

    @property
    def state(self) -> Any:
        return self.get().state

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.get()(scope, receive, send)


app = LazyApp()


class PfiConsolePlugin(AirflowPlugin):
    """The operator console: its FastAPI app and its entry in the UI's menu."""

    name = "pfi_console"
    fastapi_apps = [{"app": app, "url_prefix": URL_PREFIX, "name": "Console PFI"}]
    external_views = [
        {
            "name": "Console PFI",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "url_route": "pfi-console",
            "category": "browse",
        }
    ]
