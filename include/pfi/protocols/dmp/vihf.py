"""The VIHF: the SAML 2.0 assertion that says who feeds the DMP, for which patient, and why.

"Vecteur d'Identification et d'Habilitation Formelles", indirect authentication (the structure
authenticates, not a person's CPS card): IG-CDA ``mapping.md`` (table and the "automate" example),
DRIM-M_DATA ``publication.xml``, DRIMbox ``DeleteRequest.java``; spec-facts §5.3. The assertion
goes into ``wsse:Security`` of every ITI-41 / ITI-57 request, signed by the organisation's
signing certificate (:meth:`pfi.protocols.dmp.signing.Signer.sign_enveloped`).

Values, and where they come from:

=========================================  =====================================================
``Issuer``                                 subject DN of the signing certificate
``Subject/NameID``                         PRT-5.1 of the sender (SB), else the configured
                                           person responsible for the automated processing
``VIHF_Version``                           ``3.0`` (the examples; the IG table says 4.0 — [U])
``Authentification_Mode``                  ``INDIRECTE``
``Identifiant_Structure``                  ``1`` + FINESS of PRT-8.10 (SB), else the settings
``Secteur_Activite``                       settings (JDV_J61, e.g. ``SA01^1.2.250.1.71.4.2.4``)
``…:subject:subject-id``                   the sender's name, else "software, model, service"
``…:subject:role``                         settings; ``AUTOMATE`` when nothing else applies
``…:resource:resource-id``                 the patient's INS ``NIR^^^&OID&ISO^NH``
``Ressource_URN``                          ``urn:dmp``
``…:subject:purposeofuse``                 ``normal`` (1.2.250.1.213.1.1.4.248)
``…:patient:hl7:confidentiality-code``     only for CONNEXION_SECRETE=Y:
                                           :func:`pfi.protocols.xds.secret_connection_code` (TRE_A07)
``LPS_ID``, ``LPS_Nom``, ``LPS_Version``,  the software and its DMP homologation number
``LPS_ID_HOMOLOGATION_DMP``
=========================================  =====================================================
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lxml import etree

from pfi.protocols.dmp import constants as k
from pfi.protocols.dmp.signing import Signer

_SAML = f"{{{k.NS_SAML2}}}"
_HL7 = f"{{{k.NS_HL7}}}"
_XSI_TYPE = f"{{{k.NS_XSI}}}type"


@dataclass(frozen=True)
class Role:
    """A VIHF role (JDV_J65), written ``<Role code codeSystem displayName xsi:type="CE"/>``."""

    code: str
    code_system: str
    display_name: str = ""


AUTOMATE = Role(k.ROLE_AUTOMATE, k.ROLE_AUTOMATE_SCHEME, "AUTOMATE")


@dataclass(frozen=True)
class VihfClaims:
    """What one VIHF asserts. ``patient_id`` is patient data: kept out of ``repr``."""

    structure_id: str
    sector: str
    subject_id: str
    subject_name: str = field(repr=False)
    patient_id: str = field(repr=False)
    roles: tuple[Role, ...] = (AUTOMATE,)
    software_name: str = "PFI-Airflow"
    software_version: str = ""
    software_id: str = ""
    homologation_id: str = ""
    #: ``(code, codeSystem, displayName)`` of the secret connection (CONNEXION_SECRETE = Y).
    secret_connection: tuple[str, str, str] | None = None
    version: str = k.VIHF_VERSION


def _attribute(parent: etree._Element, name: str, *values: str | etree._Element) -> None:
    attribute = etree.SubElement(parent, _SAML + "Attribute", Name=name)
    for value in values:
        holder = etree.SubElement(attribute, _SAML + "AttributeValue")
        if isinstance(value, str):
            holder.text = value
        else:
            holder.append(value)


def _coded(tag: str, code: str, system: str, display: str, system_name: str = "") -> etree._Element:
    element = etree.Element(_HL7 + tag, nsmap={None: k.NS_HL7, "xsi": k.NS_XSI})
    element.set("code", code)
    element.set("codeSystem", system)
    if system_name:
        element.set("codeSystemName", system_name)
    if display:
        element.set("displayName", display)
    element.set(_XSI_TYPE, "CE")
    return element


def build_assertion(
    claims: VihfClaims, issuer: str, *, now: datetime | None = None, assertion_id: str = ""
) -> etree._Element:
    """The unsigned assertion, with a ``ds:Signature`` placeholder after ``Issuer``."""
    instant = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assertion_id = assertion_id or f"_{uuid.uuid4()}"
    root = etree.Element(
        _SAML + "Assertion",
        nsmap={"saml2": k.NS_SAML2, "xsi": k.NS_XSI},
        ID=assertion_id,
        IssueInstant=instant,
        Version="2.0",
    )
    etree.SubElement(root, _SAML + "Issuer", Format=k.NAMEID_FORMAT_X509).text = issuer
    etree.SubElement(root, f"{{{k.NS_DS}}}Signature", nsmap={"ds": k.NS_DS}, Id="placeholder")
    subject = etree.SubElement(root, _SAML + "Subject")
    etree.SubElement(subject, _SAML + "NameID").text = claims.subject_id
    authn = etree.SubElement(root, _SAML + "AuthnStatement", AuthnInstant=instant)
    context = etree.SubElement(authn, _SAML + "AuthnContext")
    etree.SubElement(context, _SAML + "AuthnContextClassRef").text = k.AUTHN_CONTEXT_UNSPECIFIED
    attributes = etree.SubElement(root, _SAML + "AttributeStatement")
    _attribute(attributes, "VIHF_Version", claims.version)
    _attribute(attributes, "Authentification_Mode", k.AUTHN_MODE_INDIRECT)
    _attribute(attributes, "Identifiant_Structure", claims.structure_id)
    _attribute(attributes, "Secteur_Activite", claims.sector)
    _attribute(attributes, k.ATTR_SUBJECT_ID, claims.subject_name)
    _attribute(
        attributes,
        k.ATTR_ROLE,
        *(_coded("Role", r.code, r.code_system, r.display_name) for r in claims.roles),
    )
    _attribute(attributes, k.ATTR_RESOURCE_ID, claims.patient_id)
    _attribute(attributes, "Ressource_URN", k.RESOURCE_URN_DMP)
    _attribute(
        attributes,
        k.ATTR_PURPOSE_OF_USE,
        _coded("PurposeOfUse", "normal", k.PURPOSE_SCHEME, "Accès normal", "mode acces VIHF 1.0"),
    )
    if claims.secret_connection:
        code, system, display = claims.secret_connection
        _attribute(
            attributes, k.ATTR_CONFIDENTIALITY, _coded("ConfidentialityCode", code, system, display)
        )
    for name, value in (
        ("LPS_ID", claims.software_id),
        ("LPS_Nom", claims.software_name),
        ("LPS_Version", claims.software_version),
        ("LPS_ID_HOMOLOGATION_DMP", claims.homologation_id),
    ):
        if value:
            _attribute(attributes, name, value)
    return root


def signed_vihf(
    claims: VihfClaims, signer: Signer, *, now: datetime | None = None, assertion_id: str = ""
) -> etree._Element:
    """The VIHF signed with the organisation's signing certificate (enveloped, RSA-SHA256)."""
    assertion = build_assertion(claims, signer.subject_dn, now=now, assertion_id=assertion_id)
    return signer.sign_enveloped(assertion, assertion.get("ID"))


def structure_id(organization_id: str) -> str:
    """``Identifiant_Structure`` from a FINESS (9 characters → ``1`` + FINESS, the national
    structure identifier form); an identifier already prefixed is kept."""
    organization_id = organization_id.strip()
    return f"1{organization_id}" if len(organization_id) == 9 else organization_id


__all__ = ["AUTOMATE", "Role", "VihfClaims", "build_assertion", "signed_vihf", "structure_id"]
