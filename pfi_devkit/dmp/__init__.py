"""An HTTPS SOAP 1.2 endpoint playing the DMP: IHE XDS.b ITI-41 (feed) and ITI-57 (deletion).

Why our own: no XDS.b registry/repository installs from PyPI, Debian or npm, and the real DMP
test platform needs a CNDA homologation. This endpoint checks what the DMP is known to check
(spec-digest §8, spec-facts §5) and refuses loudly, so that a wrong request fails in the tests
rather than at the CNDA:

=====================  ================================================================  ======
check                  refusal                                                           HTTP
=====================  ================================================================  ======
TLS client cert        handshake refused (``CERT_REQUIRED``, CA bundle, CRLs)            --
content type           ``application/soap+xml`` or MTOM ``multipart/related;             415
                       type="application/xop+xml"``, else SOAP Fault ``Sender``
SOAP 1.2 envelope      SOAP Fault ``VersionMismatch`` (a SOAP 1.1 or foreign root)       500
DTD in the request     SOAP Fault ``Sender`` (SOAP 1.2 forbids it; nothing is resolved)  400
``wsa:Action``         missing → ``wsa:MessageAddressingHeaderRequired``; not the path's 400
                       transaction → ``wsa:ActionNotSupported``; same for MessageID
VIHF                   no ``wsse:Security/saml2:Assertion`` → ``wsse:InvalidSecurity``;  400
                       with ``verify_vihf`` a bad signature → ``wsse:FailedCheck``
metadata / documents   ``rs:RegistryResponse`` Failure + ``rs:RegistryErrorList``         200
=====================  ================================================================  ======

Registry error codes (IHE ITI TF-3 table 4.2.4.1-2, ebRS 3.0): ``XDSMissingDocument`` (an
ExtrinsicObject without ``xds:Document``, or an ``xop:Include`` without its MIME part),
``XDSMissingDocumentMetadata`` (a Document without ExtrinsicObject), ``XDSRepositoryMetadataError``
(uniqueId missing, bad base64, bad ``hash``/``size`` syntax), ``XDSNonIdenticalHash`` (``hash``
slot ≠ SHA-1 of the bytes, or a uniqueId already stored with other bytes), ``XDSNonIdenticalSize``,
``XDSPatientIdDoesNotMatch``, ``XDSRegistryDuplicateUniqueIdInMessage``,
``XDSRegistryMetadataError`` (no submission set, entry not a member of it, missing signature
document when required), ``UnresolvedReferenceException`` (RPLC / ITI-57 target unknown),
``XDSMetadataUpdateError`` (ITI-57 status change refused), ``XDSDuplicateUniqueIdInRegistry`` (an
ITI-57 submission set whose uniqueId was already accepted: the update sent again). The same
document sent again (same uniqueId, same bytes) is the idempotent case: Success, counted in
``duplicates``, stored once.

What is stored on success (``accepted``: one ``Submission`` per request; ``entries``: uniqueId →
``DocumentEntry`` with its bytes and availability status): an RPLC association deprecates the
target entry; ITI-57 ``UpdateAvailabilityStatus`` sets ``urn:asip:ci-sis:2010:StatusType:Deleted``
(or Archived). ITI-41 is served at ``REPOSITORY_PATH``, ITI-57 at ``REGISTRY_PATH`` (the DMP's
shape); the other action on a path is refused as unsupported.

Modes, settable at runtime (``set_mode``) or from another process with ``POST /_devkit/mode``
(JSON ``{"mode": ..., "error_code": ..., "delay": ..., "duration": ...}``, same TLS client
authentication; ``GET /_devkit/state`` returns ``describe()``): ``normal``, ``fail``,
``transient``, ``slow``, ``drop``, ``down`` (see :mod:`pfi_devkit.dmp.modes`).

With ``require_signature_document`` the lot must carry the XAdES signature document (classCode
``urn:oid:1.3.6.1.4.1.19376.1.2.1.1.1``) with a ``signs`` association to the submission set, and
that document is checked: its XML-DSig signature (every reference, incl. the XAdES
``SignedProperties``) against the CA bundle, and its ``IHEManifest`` must list every other
document of the lot (``urn:oid:<uniqueId>``) with the digest of the bytes received (SHA-256 or
SHA-1) — else ``XDSRegistryMetadataError``. With ``strict_metadata`` every document entry must
carry what the DMP requires (:data:`DMP_REQUIRED_ENTRY_METADATA`: classCode, typeCode,
formatCode, confidentialityCode, healthcareFacilityTypeCode, practiceSettingCode, creationTime,
languageCode, sourcePatientId, an author) and the submission set its contentTypeCode — else
``XDSRegistryMetadataError`` naming what is missing.

Not simulated: registry queries (ITI-18), metadata updates other than availability status,
the XAdES signature policy of the DMP guide (not public), DMP business rules (DMP existence,
patient consent).

The parts, each in its module:

- :mod:`~pfi_devkit.dmp.endpoint`: :class:`DmpEndpoint`, which puts the others together;
- :mod:`~pfi_devkit.dmp.http`: the HTTPS server, TLS client authentication, control paths;
- :mod:`~pfi_devkit.dmp.soap`: SOAP 1.2 and MTOM/XOP parsing, WS-Addressing, answers and faults;
- :mod:`~pfi_devkit.dmp.security`: the VIHF and the XAdES signature document;
- :mod:`~pfi_devkit.dmp.metadata`: reading the ebRIM metadata, the DMP's mandatory metadata;
- :mod:`~pfi_devkit.dmp.registry`: ITI-41 and ITI-57, the registry store and ``store_dir``;
- :mod:`~pfi_devkit.dmp.modes`: the failure modes;
- :mod:`~pfi_devkit.dmp.model`, :mod:`~pfi_devkit.dmp.constants`: the data and the names.

``python -m pfi_devkit.dmp`` runs it alone in the foreground (``bench/bench_dmp.py``).
"""

from pfi_devkit.dmp.constants import DEFAULT_FAIL_CODE, MODES, VIHF_ATTRIBUTES_DMP
from pfi_devkit.dmp.endpoint import DmpEndpoint
from pfi_devkit.dmp.model import (
    Code,
    DocumentEntry,
    Refusal,
    RegistryError,
    RegistryFailure,
    SoapFault,
    Submission,
)
from pfi_devkit.dmp.security import verify_signature_document, verify_vihf, vihf_attributes
from pfi_devkit.dmp.soap import fault_envelope, parse_envelope, registry_response, split_mtom

__all__ = [
    "DEFAULT_FAIL_CODE",
    "MODES",
    "VIHF_ATTRIBUTES_DMP",
    "Code",
    "DmpEndpoint",
    "DocumentEntry",
    "Refusal",
    "RegistryError",
    "RegistryFailure",
    "SoapFault",
    "Submission",
    "fault_envelope",
    "parse_envelope",
    "registry_response",
    "split_mtom",
    "verify_signature_document",
    "verify_vihf",
    "vihf_attributes",
]
