"""The DMP web-service client: HTTPS with the establishment's TLS client certificate.

Indirect authentication (spec-facts §5.2): mutual TLS 1.2+ with the structure's IGC-Santé
*authentication* certificate, under the PFI's TLS policy (:mod:`pfi.protocols.tls`: the ANSSI
suites); the server is checked against the configured CA bundle only (no system store: the DMP
chains to IGC-Santé) and, with ``crl_file``, against its CAs' revocation lists. Every call has explicit connect and read timeouts.

Errors, per the PFI's tree (:mod:`pfi.base.errors`)::

    network error, timeout, TLS failure, HTTP 5xx/429,      → TransientError (retry later)
    SOAP Receiver fault, transient registry error,
    bare HTTP 401/403/404/405/407/408/421/425 (URL, credentials, proxy: the operator's fix)
    SOAP Sender fault, other HTTP 4xx, registry refusal     → RefusedByPartner (never retry)

A TLS failure is transient on purpose: an expired or revoked certificate is an operator's fix,
and the deferred queue resumes once it is done. The transport is a ``requests.Session``
(injectable, for the unit tests); nothing here logs a body.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pfi.base.errors import ConfigurationError, TransientError
from pfi.protocols.dmp.response import DmpResponse, parse_response
from pfi.protocols.dmp.soap import SoapRequest

if TYPE_CHECKING:
    import requests

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class DmpEndpoints:
    """Where ITI-41 (repository) and ITI-57 (registry) go."""

    repository_url: str
    registry_url: str

    def url_for(self, request: SoapRequest) -> str:
        return self.repository_url if request.transaction == "ITI-41" else self.registry_url


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of the establishment's TLS client credential and of the DMP's CA bundle."""

    client_cert: Path
    client_key: Path
    ca_bundle: Path
    #: PEM CRLs of every CA of the DMP's chain; when given, the server's revocation is checked.
    crl_file: Path | None = None

    def check(self) -> TlsFiles:
        missing = [
            name for name, p in vars(self).items() if p is not None and not Path(p).is_file()
        ]
        if missing:
            raise ConfigurationError(
                f"DMP TLS files missing: {', '.join(missing)}", code="DMP_TLS_FILES"
            )
        return self


def _policy_adapter_class() -> type:
    """The requests adapter of :meth:`DmpClient._session` (requests is imported lazily)."""
    from requests.adapters import HTTPAdapter

    class PolicyAdapter(HTTPAdapter):
        """Every HTTPS connection pool gets the one ``SSLContext`` (CA, CRLs, client certificate
        inside it): requests' own ``verify``/``cert`` loading (certifi, paths) is bypassed."""

        def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
            self._context = context
            super().__init__()

        def build_connection_pool_key_attributes(self, request, verify, cert=None):  # type: ignore[no-untyped-def]
            host, _ = super().build_connection_pool_key_attributes(request, True, None)
            return host, {"ssl_context": self._context, "cert_reqs": "CERT_REQUIRED"}

        def cert_verify(self, conn, url, verify, cert) -> None:  # type: ignore[no-untyped-def]
            return None

    return PolicyAdapter


class DmpClient:
    """POST SOAP requests to the DMP and read the answers.

    ::

        client = DmpClient(endpoints, tls, connect_timeout=5, read_timeout=60)
        response = client.send(request)      # DmpResponse, or TransientError / RefusedByPartner
    """

    def __init__(
        self,
        endpoints: DmpEndpoints,
        tls: TlsFiles | None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ConfigurationError("DMP timeouts must be positive", code="DMP_TIMEOUTS")
        self.endpoints = endpoints
        self.timeout = (float(connect_timeout), float(read_timeout))
        if session is None:
            if tls is None:
                raise ConfigurationError(
                    "the DMP needs a TLS client certificate", code="DMP_TLS_FILES"
                )
            session = self._session(tls.check())
        self.session = session

    @staticmethod
    def _session(tls: TlsFiles) -> requests.Session:
        """A session whose every connection uses the PFI's TLS policy (:mod:`pfi.protocols.tls`:
        TLS 1.2+, the ANSSI suites, our CA bundle and CRLs only, the client certificate)."""
        import ssl

        import requests

        from pfi.protocols import tls as policy

        try:
            context = policy.client_context(
                tls.ca_bundle,
                client_cert=tls.client_cert,
                client_key=tls.client_key,
                crl_file=tls.crl_file,
            )
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"DMP TLS files unusable ({type(exc).__name__})", code="DMP_TLS_FILES"
            ) from None
        session = requests.Session()
        session.trust_env = False  # no proxy or CA bundle from the environment overrides ours
        session.mount("https://", _policy_adapter_class()(context))
        return session

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> DmpClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def post(self, request: SoapRequest) -> tuple[int, str, bytes]:
        """The raw exchange: ``(HTTP status, Content-Type, body)``; network errors are transient."""
        import requests

        headers = {"Content-Type": request.content_type, "MIME-Version": "1.0"}
        if request.transaction == "ITI-41":
            headers["SOAPAction"] = f'"{request.action}"'
        try:
            answer: Any = self.session.post(
                self.endpoints.url_for(request),
                data=request.body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError as exc:
            from pfi.protocols.tls import failure_reason, is_certificate_failure

            code = "DMP_SERVER_CERTIFICATE" if is_certificate_failure(exc) else "DMP_TLS"
            raise TransientError(
                f"TLS with the DMP failed: {failure_reason(exc)}", code=code
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise TransientError("the DMP did not answer in time", code="DMP_TIMEOUT") from exc
        except requests.exceptions.RequestException as exc:
            raise TransientError(
                f"the DMP is unreachable ({type(exc).__name__})", code="DMP_UNREACHABLE"
            ) from exc
        return answer.status_code, answer.headers.get("Content-Type", ""), answer.content

    def send(self, request: SoapRequest) -> DmpResponse:
        """POST and parse; accepted answers come back, others raise (see the module docstring)."""
        status, content_type, body = self.post(request)
        return parse_response(status, content_type, body).raise_for_outcome()


__all__ = [
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_READ_TIMEOUT",
    "DmpClient",
    "DmpEndpoints",
    "TlsFiles",
]
