"""Protocols layer: the national and IHE formats and the partners' wire protocols, pure.

HL7 v2 (parser, model, ACK/ZAM builders), MLLP, INS, safe XML, CDA, XDS (with its model), XDM, the
DMP client (build, sign, send, read the answer) and the MSSanté client (compose, SMTP, IMAP,
DSN/MDN parsing). Nothing here touches the ledger or reads the settings file: callers hand in the
values (a :class:`pfi.base.settings.Site`, a ``DmpConfig``…) and the open transports.
"""
