"""The DPI's synchronous ACK to the volet LPS MDM (:mod:`pfi.protocols.hl7v2.lps`).

Volet "Transmission au LPS de documents CDA provenant d'un courriel MSSanté" v1.1,
``profils-messages.md`` §ACK and ``error-codes.md``: ``MSH MSA [ERR]``, MSA-1 ``AA``/``AE``/
``AR``, ERR-3 (HL7 table 0357), ERR-5 (the volet's ``applicationErrorCode`` 900–906, labels of
:data:`pfi.protocols.hl7v2.zam.APPLICATION_ERROR_LABELS`). :func:`read_ack` reads it with the
project's parser, keeping ERR-3 and ERR-5 apart; :class:`~pfi.protocols.mllp.MllpAnswer` keeps
one code only (ERR-5.1, else ERR-3.1): :func:`ack_from_answer` reads that back. Errors:
:class:`~pfi.base.errors.InvalidInput` ``LPS_ACK_NOT_ACK``, ``LPS_ACK_CODE``,
``LPS_ACK_OTHER_MESSAGE``; no patient data in their texts.
"""

from __future__ import annotations

from dataclasses import dataclass

from pfi.base.errors import InvalidInput
from pfi.protocols.hl7v2 import constants as c
from pfi.protocols.hl7v2.ack import ACK_CODES, ERR_APPLICATION
from pfi.protocols.hl7v2.model import Hl7Ack
from pfi.protocols.hl7v2.parser import parse_message
from pfi.protocols.hl7v2.zam import APPLICATION_ERROR_LABELS
from pfi.protocols.mllp import ACCEPTED, MllpAnswer


@dataclass(frozen=True)
class DpiAck:
    """The DPI's answer to one MDM (``profils-messages.md`` §ACK, ``error-codes.md``).

    ``code`` MSA-1 (``AA`` integrated, ``AE`` error, ``AR`` rejected; ``CA``/``CE``/``CR`` in
    enhanced mode), ``acknowledged_id`` MSA-2; for the first ERR: ``condition`` ERR-3.1 (HL7
    table 0357, e.g. ``207`` application error, ``203`` unsupported version) with its text,
    ``application_code`` ERR-5.1 (the volet's 900–906 when ERR-3 is 207) with ERR-5.2,
    ``location`` ERR-2, ``severity`` ERR-4. Codes and labels only: no patient data expected.
    """

    code: str
    acknowledged_id: str = ""
    condition: str = ""
    condition_text: str = ""
    application_code: str = ""
    application_text: str = ""
    location: str = ""
    severity: str = ""

    @property
    def accepted(self) -> bool:
        return self.code in ACCEPTED

    @property
    def error_code(self) -> str:
        """The code an error mail names (``[KO Intégration système !][<code>]``): ERR-5, else
        ERR-3; empty when the DPI gave none."""
        return self.application_code or self.condition

    @property
    def label(self) -> str:
        """ERR-5.2 as the DPI wrote it, else the volet's label of ERR-5.1, else ERR-3.2."""
        return (
            self.application_text
            or APPLICATION_ERROR_LABELS.get(self.application_code, "")
            or self.condition_text
        )


def read_ack(raw: bytes, *, control_id: str = "") -> DpiAck:
    """Read the DPI's ACK with the project's HL7 parser.

    ``control_id``, when given, is the MDM's MSH-10: an MSA-2 naming another message raises
    ``LPS_ACK_OTHER_MESSAGE`` (an empty one is tolerated, as
    :class:`~pfi.protocols.mllp.MllpClient` does). An answer that is not an ACK raises
    ``LPS_ACK_NOT_ACK``, an MSA-1 outside table 0008 ``LPS_ACK_CODE``; one the parser cannot
    read (an MSH-18 it does not know…) its :class:`~pfi.protocols.hl7v2.Hl7Error` —
    :func:`pfi.protocols.mllp.parse_answer` and :func:`ack_from_answer` still read MSA-1 and
    the code from it.
    """
    message = parse_message(raw)
    if not isinstance(message, Hl7Ack) or message.header.message_code != c.MSG_ACK:
        raise InvalidInput("the DPI's answer is not an HL7 ACK", code="LPS_ACK_NOT_ACK")
    code = message.code.strip().upper()
    if code not in ACK_CODES:
        raise InvalidInput(
            f"the DPI's ACK has MSA-1 {code[:4]!r}, not AA, AE or AR", code="LPS_ACK_CODE"
        )
    acknowledged = message.acknowledged_control_id.strip()
    if control_id and acknowledged and acknowledged != control_id.strip():
        raise InvalidInput(
            "the DPI acknowledged another message (MSA-2)", code="LPS_ACK_OTHER_MESSAGE"
        )
    err = message.errors[0] if message.errors else None
    if err is None:
        return DpiAck(code, acknowledged)
    return DpiAck(
        code,
        acknowledged,
        condition=err.condition[0].strip(),
        condition_text=err.condition[1].strip(),
        application_code=err.application_code.strip(),
        application_text=err.application_text.strip(),
        location=err.location.strip(),
        severity=err.severity.strip(),
    )


def ack_from_answer(answer: MllpAnswer) -> DpiAck:
    """A :class:`DpiAck` from what :class:`~pfi.protocols.mllp.MllpClient` kept of the ACK.

    The MLLP answer holds one error code (ERR-5.1, else ERR-3.1) and one text: a code of the
    volet's table (900–906) is taken as ERR-5, any other as ERR-3.
    """
    code = answer.error_code.strip()
    if code in APPLICATION_ERROR_LABELS:
        return DpiAck(
            answer.code,
            answer.acknowledged_id,
            condition=ERR_APPLICATION[0],
            application_code=code,
            application_text=answer.text,
        )
    return DpiAck(answer.code, answer.acknowledged_id, condition=code, condition_text=answer.text)


__all__ = ["DpiAck", "ack_from_answer", "read_ack"]
