"""XDS metadata of a CDA document: the CI-SIS CDA → XDS mapping, DMP visibility codes.

Public API (stable; the DMP and MSSanté deliveries build on it)::

    from pfi.protocols import xds

    entry = xds.document_entry(cda, flags=request.flags, entry_id="Document01")
    # strict=True: InvalidInput XDS_METADATA_INCOMPLETE if a DMP-required field is empty
    ss = xds.submission_set(
        unique_id=f"{site.structure_oid}.{ledger_id}",
        source_id=site.structure_oid,
        patient_id=entry.patient_id,
        submission_time=now,
        authors=[xds.institution_author(name, "1" + finess_geo, software_name="PFI-Airflow")],
        patient_class="I",                                   # PV1-2 → contentTypeCode
        intended_recipients=[xds.mail_recipient(address)],   # XDM only
    )
    extra = [xds.replacement_association(entry.entry_id, old_entry_uuid)] if cda.replaced_id else []
    zip_bytes = pfi.protocols.xdm.pack_xdm([(entry, cda_bytes)], ss, associations=extra)

- :func:`document_entry` — DocumentEntry from the CDA header (+ MetaDMPMSS flags);
  :func:`document_entry_for_request` / :func:`submission_set_for_request` — the same from an
  :class:`pfi.protocols.hl7v2.Hl7Request` (flags, PID-3 INS, PRT ``SB`` author, PV1-2 content type);
- :func:`submission_set`, :func:`institution_author`, :func:`mail_recipient` — SubmissionSet;
  :func:`system_identifier`, :func:`system_xcn` — a system author as the PDSm IG writes it;
- :func:`visibility_codes` — MetaDMPMSS flags → TRE_A07 confidentiality codes;
  :func:`secret_connection_code` — CONNEXION_SECRETE → the VIHF confidentiality-code value;
- :func:`replacement_association` — the XDS RPLC association of a replacement;
- :func:`class_code_for`, :func:`format_code_for`, :func:`content_type_for` — the tables;
- :func:`missing_required` — DMP-required attributes left empty.

Tables and code systems: :mod:`pfi.protocols.xds.constants` (each with its ANS source and version). The models (``DocumentEntry``,
``SubmissionSet``, ``Association``, ``Author``, ``Coded``) are those of :mod:`pfi.protocols.xds.model`.
Spec: IG-CDA ``mapping.md`` / ``lien-entete-cda-meta-xds.md``, spec-facts §3.6–3.8, §4.3, §5.4.
"""

from pfi.protocols.xds.builder import (
    REQUIRED_FIELDS,
    class_code_for,
    coded,
    confidentiality_code,
    content_type_for,
    cx,
    document_entry,
    document_entry_for_request,
    format_code_for,
    institution_author,
    mail_recipient,
    missing_required,
    replaced_unique_id,
    replacement_association,
    secret_connection_code,
    sender_author,
    source_patient_info,
    structure_id_of,
    submission_set,
    submission_set_for_request,
    system_identifier,
    system_xcn,
    visibility_codes,
    xcn,
    xds_author,
    xon,
)

__all__ = [
    "REQUIRED_FIELDS",
    "class_code_for",
    "coded",
    "confidentiality_code",
    "content_type_for",
    "cx",
    "document_entry",
    "document_entry_for_request",
    "format_code_for",
    "institution_author",
    "mail_recipient",
    "missing_required",
    "replaced_unique_id",
    "replacement_association",
    "secret_connection_code",
    "sender_author",
    "structure_id_of",
    "source_patient_info",
    "submission_set",
    "submission_set_for_request",
    "system_identifier",
    "system_xcn",
    "visibility_codes",
    "xcn",
    "xds_author",
    "xon",
]
