"""Feeding the DMP (Dossier Médical Partagé) in indirect authentication.

IHE XDS.b **ITI-41** (publish, replace with RPLC) and **ITI-57** (delete) over HTTPS with the
establishment's TLS client certificate; a signed **VIHF** in ``wsse:Security``; an **XAdES**
signature document in every lot (spec-facts §5; volet "Transmission de document(s) CDA en HL7v2"
§DMP; DSR SC.DMP/*).

::

    from pfi.protocols.dmp import DmpClient, DmpEndpoints, DmpSubmission, Signer, TlsFiles, build_request

    submission = DmpSubmission.from_request(hl7_request)          # the CDA, flags, sender
    soap = build_request(submission, config=config, signer=Signer.from_files(cert, key),
                         endpoints=endpoints, request_id=delivery.request_id)
    with DmpClient(endpoints, TlsFiles(cert, key, ca)) as client:
        client.send(soap)           # DmpResponse, or TransientError / RefusedByPartner

Modules: :mod:`~pfi.protocols.dmp.vihf` (SAML assertion), :mod:`~pfi.protocols.dmp.signing` (signing certificate,
XAdES signature document), :mod:`~pfi.protocols.dmp.soap` (SOAP 1.2 + WS-Addressing envelopes, MTOM/XOP),
:mod:`~pfi.protocols.dmp.submission` (request → metadata → envelope), :mod:`~pfi.protocols.dmp.response` (answers
→ success / partial / failure), :mod:`~pfi.protocols.dmp.client` (HTTPS), :mod:`~pfi.flows.dmp` (the
ledger-driven executor of the ``dmp`` deliveries), :mod:`~pfi.protocols.dmp.config` (``[dmp]`` settings).
"""

from pfi.protocols.dmp.client import DmpClient, DmpEndpoints, TlsFiles
from pfi.protocols.dmp.config import DmpConfig
from pfi.protocols.dmp.response import DmpResponse, RegistryError, parse_response
from pfi.protocols.dmp.signing import Signer, signature_document
from pfi.protocols.dmp.soap import SoapRequest
from pfi.protocols.dmp.submission import (
    DmpSubmission,
    build_request,
    entry_uuid,
    submission_set_unique_id,
)
from pfi.protocols.dmp.vihf import Role, VihfClaims, signed_vihf

__all__ = [
    "DmpClient",
    "DmpConfig",
    "DmpEndpoints",
    "DmpResponse",
    "DmpSubmission",
    "RegistryError",
    "Role",
    "Signer",
    "SoapRequest",
    "TlsFiles",
    "VihfClaims",
    "build_request",
    "entry_uuid",
    "parse_response",
    "signature_document",
    "signed_vihf",
    "submission_set_unique_id",
]
