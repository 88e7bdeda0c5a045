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

Modules: :mod:`.vihf` (SAML assertion), :mod:`.signing` (signing certificate, XAdES signature
document), :mod:`.soap` (SOAP 1.2 + WS-Addressing envelopes, MTOM/XOP), :mod:`.submission`
(request → metadata → envelope), :mod:`.response` (answers → success / partial / failure),
:mod:`.client` (HTTPS), :mod:`.connection` (the ``pfi_dmp`` Connection → endpoints, TLS files,
signer), :mod:`.config` (``[dmp]`` settings). The ledger-driven executor of the ``dmp``
deliveries is a flow: :mod:`pfi.flows.dmp`.
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
