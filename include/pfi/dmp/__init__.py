"""Feeding the DMP (Dossier Médical Partagé) in indirect authentication.

IHE XDS.b **ITI-41** (publish, replace with RPLC) and **ITI-57** (delete) over HTTPS with the
establishment's TLS client certificate; a signed **VIHF** in ``wsse:Security``; an **XAdES**
signature document in every lot (spec-facts §5; volet "Transmission de document(s) CDA en HL7v2"
§DMP; DSR SC.DMP/*).

::

    from pfi.dmp import DmpClient, DmpEndpoints, DmpSubmission, Signer, TlsFiles, build_request

    submission = DmpSubmission.from_request(hl7_request)          # the CDA, flags, sender
    soap = build_request(submission, config=config, signer=Signer.from_files(cert, key),
                         endpoints=endpoints, request_id=delivery.request_id)
    with DmpClient(endpoints, TlsFiles(cert, key, ca)) as client:
        client.send(soap)           # DmpResponse, or TransientError / RefusedByPartner

Modules: :mod:`~pfi.dmp.vihf` (SAML assertion), :mod:`~pfi.dmp.signing` (signing certificate,
XAdES signature document), :mod:`~pfi.dmp.soap` (SOAP 1.2 + WS-Addressing envelopes, MTOM/XOP),
:mod:`~pfi.dmp.submission` (request → metadata → envelope), :mod:`~pfi.dmp.response` (answers
→ success / partial / failure), :mod:`~pfi.dmp.client` (HTTPS), :mod:`~pfi.dmp.sender` (the
ledger-driven executor of the ``dmp`` deliveries), :mod:`~pfi.dmp.config` (``[dmp]`` settings).
"""

from pfi.dmp.client import DmpClient, DmpEndpoints, TlsFiles
from pfi.dmp.config import DmpConfig
from pfi.dmp.response import DmpResponse, RegistryError, parse_response
from pfi.dmp.signing import Signer, signature_document
from pfi.dmp.soap import SoapRequest
from pfi.dmp.submission import (
    DmpSubmission,
    build_request,
    entry_uuid,
    submission_set_unique_id,
)
from pfi.dmp.vihf import Role, VihfClaims, signed_vihf

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
