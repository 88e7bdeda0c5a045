"""Hostile inputs for the property-based tests (hypothesis): seeds, mutators, profiles, checks.

Two hypothesis profiles, chosen by ``PFI_FUZZ`` (``make fuzz`` sets it):

- ``ci`` (default, in ``make test``): a few dozen examples per property, derandomized (the same
  cases on every run), no deadline, no example database;
- ``fuzz``: ``PFI_FUZZ_EXAMPLES`` examples per property (default 10,000), random, the failures
  kept in ``var/hypothesis`` and replayed first by the next run.

Seeds are the project's own samples (:mod:`pfi_devkit.samples`: the four HL7 messages, their
CDA, the MSSanté mail with its ``IHE_XDM.ZIP``); the mutators change bytes, lines and structure
the way broken or hostile producers do, and fully random inputs come beside them.

What every property asserts (:func:`refusal_is_coded`): the reader returns, or raises a
:class:`~pfi.base.errors.PfiError` with a non-empty code whose text names none of the seeds'
patient data (the official test identity: INS, names, birth date, patient mailbox); each case
ends within :data:`CASE_SECONDS` and, sampled, :data:`MAX_CASE_MB` of memory (the readers' limits
bound the work).
"""

from __future__ import annotations

import base64
import io
import itertools
import os
import re
import resource
import time
import tracemalloc
import zipfile
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.database import DirectoryBasedExampleDatabase

from pfi.base.errors import PfiError

ROOT = Path(__file__).resolve().parents[2]
FUZZ_ENV = "PFI_FUZZ"
#: A case taking longer than this is a failure: the readers' limits must bound the work.
CASE_SECONDS = 5.0
#: Peak of the memory one case allocates (tracemalloc, one case in :data:`TRACED_EVERY`): the
#: readers' limits (64 MiB archive, 128 MiB expanded, 20 MiB XML) keep a case well below it.
MAX_CASE_MB = 400
TRACED_EVERY = 25
#: Growth of the process's peak memory over one property's run that fails it (hypothesis keeps
#: its own records of the cases it ran: more over 10,000 cases).
MAX_RSS_GROWTH_MB = 2048 if os.environ.get(FUZZ_ENV) else 512

set_hypothesis_home_dir(str(ROOT / "var" / "hypothesis"))  # not .hypothesis/ in the clone
settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("PFI_FUZZ_CI_EXAMPLES", "30")),
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("PFI_FUZZ_EXAMPLES", "10000")),
    deadline=None,
    derandomize=False,
    database=DirectoryBasedExampleDatabase(str(ROOT / "var" / "hypothesis" / "examples")),
    print_blob=True,
    phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = "fuzz" if os.environ.get(FUZZ_ENV) else "ci"
settings.load_profile(PROFILE)


def flow_settings(examples: int) -> settings:
    """The flow-level properties (real servers, a ledger): ``examples`` cases in the ``ci``
    profile, ten times as many in ``fuzz``."""
    return settings(
        settings.get_profile(PROFILE),
        max_examples=examples * (10 if PROFILE == "fuzz" else 1),
        suppress_health_check=list(HealthCheck),
    )


# --- the seeds' patient data (the official ANS test identity of the samples) ------------------


def _patient_tokens() -> tuple[str, ...]:
    from pfi_devkit import samples as s

    return (
        s.INS,
        s.INS[:13],
        s.BIRTH_NAME,
        s.FIRST_GIVEN_NAME,
        s.BIRTH_DATE.strftime("%Y%m%d"),
        s.BIRTH_DATE.isoformat(),
        s.PATIENT_MAILBOX,
    )


PATIENT_TOKENS = _patient_tokens()
_LEAK = re.compile(
    "(?<![0-9A-Za-z])(?:" + "|".join(re.escape(t) for t in PATIENT_TOKENS) + ")(?![0-9A-Za-z])",
    re.IGNORECASE,
)


def leaks(text: str) -> list[str]:
    """The seeds' patient data found in ``text`` (whole tokens, as test_patient_data matches)."""
    return _LEAK.findall(text or "")


def refusal_is_coded(exc: BaseException, *, prefixes: Sequence[str] = ()) -> PfiError:
    """``exc`` is one of the project's coded errors, its text free of patient data."""
    assert isinstance(exc, PfiError), f"not a coded error: {type(exc).__name__}: {exc!s:.300}"
    assert exc.code, f"empty code: {exc!r}"
    if prefixes:
        assert exc.code.startswith(tuple(prefixes)), f"unexpected code {exc.code}: {exc}"
    assert not exc.__cause__ or isinstance(exc.__cause__, PfiError), repr(exc.__cause__)
    text = f"{exc.code} {exc}"
    assert not leaks(text), f"patient data in the refusal: {leaks(text)} in {text[:300]!r}"
    return exc


@contextmanager
def bounded_case():
    """One case: within :data:`CASE_SECONDS`."""
    start = time.perf_counter()
    yield
    elapsed = time.perf_counter() - start
    assert elapsed < CASE_SECONDS, f"one case took {elapsed:.1f} s"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- seeds ------------------------------------------------------------------------------------


@cache
def hl7_seeds() -> tuple[bytes, ...]:
    from pfi_devkit.samples import NAMES, sample_bytes

    return tuple(sample_bytes(name) for name in NAMES)


@cache
def cda_seeds() -> tuple[bytes, ...]:
    found = []
    for raw in hl7_seeds():
        for payload in re.findall(rb"\^Base64\^([A-Za-z0-9+/=]+)", raw):
            content = base64.b64decode(payload + b"=" * (-len(payload) % 4))
            if content.lstrip().startswith(b"<"):
                found.append(content)
    return tuple(dict.fromkeys(found))


@cache
def mail_seeds() -> tuple[bytes, ...]:
    import email.policy

    from pfi_devkit.samples import MDM_INIT, ORU_INIT, sample_bytes
    from pfi_devkit.samples.mail import document_mail

    sender, recipient = "dr.test@ch-demo.mssante.test", "pfi@ch-demo.mssante.test"
    out = []
    for name, with_xdm in ((MDM_INIT, True), (ORU_INIT, True), (MDM_INIT, False)):
        message = document_mail(
            sample_bytes(name), sender, recipient, with_xdm=with_xdm, message_id="<seed@ch.test>"
        )
        out.append(message.as_bytes(policy=email.policy.SMTP))
    return tuple(out)


@cache
def xdm_seeds() -> tuple[bytes, ...]:
    from pfi.protocols.mssante.inbound import read_mail

    return tuple(a.data for raw in mail_seeds() for a in read_mail(raw).xdm_archives)


@cache
def xdm_seed_members() -> tuple[tuple[tuple[str, bytes], ...], ...]:
    out = []
    for data in xdm_seeds():
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            out.append(tuple((i.filename, archive.read(i)) for i in archive.infolist()))
    return tuple(out)


# --- mutators ---------------------------------------------------------------------------------

#: Bytes that mean something to one of the formats: separators, escapes, markup, signatures.
DICTIONARY = (
    b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\r\n", b"\x0b", b"\x1c", b"\x00", b"\xff",
    b"\xef\xbb\xbf", b"\xc3", b"\xe9", b"MSH|^~\\&|", b"MSH|", b"OBX|", b"PID|", b"FHS|", b"BHS|",
    b"\\X", b"\\XFF\\", b"\\E\\", b"\\F\\", b"\\.br\\", b"^Base64^", b"^A^", b"^Hex^", b"ED",
    b"UNICODE UTF-8", b"8859/15", b"CISIS_CDA_HL7_LPS", b"MDM^T10", b"ORU^R01^ORU_R01", b"ACK",
    b"<!DOCTYPE x [<!ENTITY a 'aa'>]>", b"&a;", b"&#0;", b"&#x110000;", b"]]>", b"<![CDATA[",
    b"<!--", b"-->", b"<?xml version='1.0' encoding='UTF-7'?>",
    b"<?xml version='1.0' encoding='x-unknown'?>", b"<?xml version='1.1'?>", b"xmlns=''",
    b"xmlns:x='urn:x'", b"</ClinicalDocument>", b"<ClinicalDocument xmlns='urn:hl7-org:v3'>",
    b"--", b"\r\n\r\n", b"=?utf-8?B?", b"=?x-unknown?Q?=FF?=", b"?=", b"boundary=", b"charset=",
    b"Content-Type: multipart/mixed; boundary=\"b\"\r\n", b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable", b"filename*=utf-8''%FF%00",
    b"message/rfc822", b"=\r\n", b"=ZZ", b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06",
    b"PK\x06\x06", b"PK\x06\x07", b"\xff\xff\xff\xff", b"\x00\x00\x00\x00", b"9" * 5000,
    b"-1", b"1e308", b"IHE_XDM.ZIP", b"../", b"/", b"C:", b"%2e%2e/",
)  # fmt: skip


@st.composite
def mutated(draw, seeds: Sequence[bytes], *, max_steps: int = 8) -> bytes:
    """A seed changed by 1–``max_steps`` edits: a byte set, a range deleted, duplicated or
    repeated, random or dictionary bytes inserted, a line dropped or swapped, cut short, or
    spliced with another seed."""
    data = bytearray(draw(st.sampled_from(list(seeds))))
    for _ in range(draw(st.integers(1, max_steps))):
        op = draw(
            st.sampled_from(
                (
                    "set",
                    "delete",
                    "insert",
                    "token",
                    "duplicate",
                    "repeat",
                    "lines",
                    "cut",
                    "splice",
                )
            )
        )
        size = len(data)
        pos = draw(st.integers(0, size))
        if op == "set" and size:
            data[min(pos, size - 1)] = draw(st.integers(0, 255))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 256))]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=64))
        elif op == "token":
            data[pos:pos] = draw(st.sampled_from(DICTIONARY))
        elif op == "duplicate":
            length = draw(st.integers(1, 512))
            data[pos:pos] = data[pos : pos + length]
        elif op == "repeat":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=4)) * draw(st.integers(1, 5000))
        elif op == "lines":
            lines = bytes(data).splitlines(keepends=True)
            if lines:
                i = draw(st.integers(0, len(lines) - 1))
                j = draw(st.integers(0, len(lines) - 1))
                action = draw(st.sampled_from(("drop", "swap", "double")))
                if action == "drop":
                    del lines[i]
                elif action == "swap":
                    lines[i], lines[j] = lines[j], lines[i]
                else:
                    lines.insert(j, lines[i])
                data = bytearray(b"".join(lines))
        elif op == "cut":
            del data[pos:]
        elif op == "splice":
            other = draw(st.sampled_from(list(seeds)))
            data[pos:] = other[draw(st.integers(0, len(other))) :]
    return bytes(data)


def hostile(seeds: Sequence[bytes], *, random_size: int = 4096) -> st.SearchStrategy[bytes]:
    """Mutated seeds most of the time, fully random bytes beside them."""
    return st.one_of(
        mutated(seeds),
        mutated(seeds),
        mutated(seeds),
        st.binary(max_size=random_size),
    )


# --- hl7 --------------------------------------------------------------------------------------

_HL7_TEXT = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=40)


@st.composite
def hl7_structural(draw) -> bytes:
    """A sample with one field (or component) of one segment replaced by random text."""
    seed = draw(st.sampled_from(list(hl7_seeds())))
    segments = seed.split(b"\r")
    i = draw(st.integers(0, len(segments) - 1))
    fields = segments[i].split(b"|")
    j = draw(st.integers(0, len(fields) + 3))
    value = draw(
        st.one_of(
            _HL7_TEXT.map(lambda t: t.encode("utf-8")),
            st.sampled_from(DICTIONARY),
            st.binary(max_size=40),
        )
    )
    while len(fields) <= j:
        fields.append(b"")
    fields[j] = value
    segments[i] = b"|".join(fields)
    return b"\r".join(segments)


def with_cda(hl7: bytes, cda: bytes) -> bytes:
    """``hl7`` (a sample) carrying ``cda`` as its document (OBX-5 Base64)."""
    encoded = base64.b64encode(cda)
    return re.sub(
        rb"(\|ED\|[^|]*\|\|\^text\^XML\^Base64\^)[A-Za-z0-9+/=]+",
        lambda m: m.group(1) + encoded,
        hl7,
        count=1,
    )


@st.composite
def hl7_with_hostile_cda(draw) -> bytes:
    """A valid message whose document is a damaged CDA, well encoded: the envelope passes,
    the document's header is what is hostile."""
    seed = draw(st.sampled_from(list(hl7_seeds())))
    return with_cda(seed, draw(cda_inputs()))


def hl7_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(
        hostile(hl7_seeds()),
        hl7_structural(),
        mutated(hl7_seeds(), max_steps=2),
        hl7_with_hostile_cda(),
    )


# --- mail -------------------------------------------------------------------------------------


@st.composite
def mail_structural(draw) -> bytes:
    """A sample mail with a header line dropped, repeated, replaced or added, and its parts'
    boundaries, charsets or encodings changed."""
    seed = draw(st.sampled_from(list(mail_seeds())))
    head, _, body = seed.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    i = draw(st.integers(0, len(lines) - 1))
    action = draw(st.sampled_from(("drop", "double", "replace", "add")))
    header = draw(
        st.sampled_from(
            (
                b"From: ", b"To: ", b"Subject: ", b"Message-ID: ", b"Date: ",
                b"Content-Type: ", b"Disposition-Notification-To: ", b"Return-Path: ",
                b"Original-Recipient: ", b"Auto-Submitted: ", b"Reply-To: ", b"Cc: ",
                b"Content-Transfer-Encoding: ", b"MIME-Version: ",
            )
        )
    ) + draw(st.one_of(st.binary(max_size=60), st.sampled_from(DICTIONARY)))  # fmt: skip
    if action == "drop":
        del lines[i]
    elif action == "double":
        lines.insert(i, lines[i])
    elif action == "replace":
        lines[i] = header
    else:
        lines.insert(i, header)
    for old, new in draw(
        st.lists(
            st.tuples(
                st.sampled_from(
                    (b"base64", b"multipart/mixed", b"application/zip", b"utf-8", b"boundary=",
                     b"attachment", b"IHE_XDM.ZIP", b"text/plain", b"\r\n\r\n")
                ),
                st.sampled_from(DICTIONARY + (b"", b"7bit", b"x-uuencode", b"utf-7", b"binary")),
            ),
            max_size=2,
        )
    ):  # fmt: skip
        body = body.replace(old, new, draw(st.integers(1, 3)))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def mail_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(hostile(mail_seeds()), mail_structural())


# --- xdm --------------------------------------------------------------------------------------

_UNSAFE_NAMES = (
    "../evil", "/abs", "C:/x", "a\\b", "IHE_XDM//x", "./x", "IHE_XDM/./S/x", "x\x00y", "x\x01",
    "é" * 300, "IHE_XDM/SUBSET01/../METADATA.XML", "IHE_XDM/SUBSET02/METADATA.XML",
    "ihe_xdm/subset01/metadata.xml", "IHE_XDM/SUBSET01/DOC0001.XML", "INDEX.HTM", "README.TXT",
    "IHE_XDM/", "IHE_XDM/SUBSET01/", "",
)  # fmt: skip

_SLOT_VALUES = st.one_of(
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(("", " ", "9" * 5000, "0x10", "1_0", "١٢", "-0", "da39a3ee5e6b4b0d3255bfef95601890afd80709")),
    st.text(max_size=30),
    st.lists(st.integers(0, 10**6), min_size=2, max_size=3).map(
        lambda ns: "\x1f".join(f"{n}|DOC" for n in ns)
    ),
    st.just("9" * 5000 + "|DOC\x1f1|0001.XML"),
)  # fmt: skip


@st.composite
def metadata_mutated(draw, metadata: bytes) -> bytes:
    """METADATA.XML with slot values, attributes or elements changed (bounded patterns: the
    text may already be mutated into long runs)."""
    text = metadata.decode("utf-8", "replace")
    action = draw(st.sampled_from(("slot", "attribute", "drop", "bytes")))
    if action == "slot":
        values = list(re.finditer(r"<(\w{1,20}:)?Value>([^<]*)</(\w{1,20}:)?Value>", text))
        if values:
            m = draw(st.sampled_from(values))
            new = draw(_SLOT_VALUES)
            if "\x1f" in new:  # several values: one <Value> each
                prefix = m.group(1) or ""
                new = f"</{prefix}Value><{prefix}Value>".join(new.split("\x1f"))
            new = new.replace("&", "&amp;").replace("<", "&lt;")
            new = "".join(ch for ch in new if ch in "\t\n\r" or ch >= " ")
            new = "".join(ch for ch in new if not 0xD800 <= ord(ch) <= 0xDFFF)
            text = text[: m.start(2)] + new + text[m.end(2) :]
    elif action == "attribute":
        attrs = list(re.finditer(r'(\w{1,40})="([^"]{0,400})"', text))
        if attrs:
            m = draw(st.sampled_from(attrs))
            new = draw(st.sampled_from(("", "x", "urn:uuid:0", "9" * 5000, "IHE_XDM/../x")))
            text = text[: m.start(2)] + new + text[m.end(2) :]
    elif action == "drop":
        elements = list(re.finditer(r"<(\w{1,20}:)?(\w{1,40})[ >][^<]{0,400}?</\1?\2>", text))
        if elements:
            m = draw(st.sampled_from(elements))
            text = text[: m.start()] + text[m.end() :]
    else:
        return draw(mutated((metadata,), max_steps=3))
    return text.encode("utf-8")


@st.composite
def xdm_archives(draw) -> bytes:
    """An XDM zip rebuilt from a sample's members: members dropped, renamed, repeated, added,
    their content (METADATA.XML and the documents) changed or blown up (zip bombs), stored or
    deflated, with forged attributes; then, sometimes, bytes of the archive itself changed
    (sizes, flags, methods, offsets of the local headers and the central directory)."""
    members = list(draw(st.sampled_from(list(xdm_seed_members()))))
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(members) - 1)) if members else 0
        action = draw(
            st.sampled_from(("drop", "rename", "double", "add", "content", "metadata", "bomb"))
        )
        if action == "drop" and members:
            del members[i]
        elif action == "rename" and members:
            name = draw(st.one_of(st.sampled_from(_UNSAFE_NAMES), st.text(max_size=40)))
            members[i] = (name, members[i][1])
        elif action == "double" and members:
            members.insert(i, members[i])
        elif action == "add":
            name = draw(st.one_of(st.sampled_from(_UNSAFE_NAMES), st.text(max_size=40)))
            members.append((name, draw(st.binary(max_size=256))))
        elif action == "bomb" and members:  # very compressible: the ratio and size limits
            size = 2**20 + draw(st.integers(1, 4096))  # just over ratio_floor_bytes
            members[i] = (members[i][0], draw(st.sampled_from((b"\0", b"A", b"<a/>"))) * size)
        elif action == "content" and members:
            members[i] = (members[i][0], draw(mutated((members[i][1],), max_steps=3)))
        elif action == "metadata":
            for k, (name, content) in enumerate(members):
                if name.upper().endswith("METADATA.XML"):
                    members[k] = (name, draw(metadata_mutated(content)))
                    break
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members:
            info = zipfile.ZipInfo(name or "x")
            info.compress_type = draw(st.sampled_from((zipfile.ZIP_DEFLATED, zipfile.ZIP_STORED)))
            if draw(st.integers(0, 9)) == 0:
                info.external_attr = draw(st.integers(0, 2**32 - 1))
            archive.writestr(info, content)
    data = bytearray(buffer.getvalue())
    if draw(st.booleans()):  # forge the archive's own structures near a signature
        signatures = [
            m.start() for m in re.finditer(rb"PK[\x01\x03\x05\x06][\x02\x04\x06\x07]", data)
        ]
        for _ in range(draw(st.integers(1, 4))):
            if not signatures:
                break
            at = draw(st.sampled_from(signatures)) + draw(st.integers(4, 45))
            if at < len(data):
                data[at] = draw(st.integers(0, 255))
    return bytes(data)


def xdm_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(xdm_archives(), xdm_archives(), hostile(xdm_seeds(), random_size=1024))


# --- cda --------------------------------------------------------------------------------------


@st.composite
def cda_structural(draw) -> bytes:
    """A sample CDA with XML-level damage: a DOCTYPE or entity planted, the encoding declared
    otherwise, elements nested very deep, an attribute or element text replaced."""
    seed = draw(st.sampled_from(list(cda_seeds())))
    action = draw(st.sampled_from(("doctype", "encoding", "deep", "attribute", "text", "wide")))
    if action == "doctype":
        return b"<!DOCTYPE ClinicalDocument [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>" + seed
    if action == "encoding":
        enc = draw(st.sampled_from(("UTF-16", "UTF-7", "ISO-8859-1", "EBCDIC", "x-bogus", "")))
        body = re.sub(rb"^<\?xml[^>]*\?>", b"", seed)
        return f"<?xml version='1.0' encoding='{enc}'?>".encode() + body
    if action == "deep":
        depth = draw(st.integers(1, 400))
        return seed.replace(b"<title>", b"<title>" + b"<x>" * depth + b"</x>" * depth, 1)
    if action == "wide":
        return seed.replace(b"<title>", b"<title>" + b"<templateId root='1'/>" * 2000, 1)
    pattern = rb'(\w{1,40})="([^"]{0,400})"' if action == "attribute" else rb">([^<]{1,200})<"
    found = list(re.finditer(pattern, seed))
    if not found:
        return seed
    m = draw(st.sampled_from(found))
    group = 2 if action == "attribute" else 1
    new = draw(
        st.one_of(
            st.sampled_from((b"", b"9" * 5000, b"20241399", b"99999999999999+9999", b"&#0;")),
            st.text(max_size=30).map(
                lambda t: t.encode("utf-8", "replace").replace(b"<", b"").replace(b"&", b"")
            ),
        )
    )
    return seed[: m.start(group)] + new + seed[m.end(group) :]


def cda_inputs() -> st.SearchStrategy[bytes]:
    return st.one_of(hostile(cda_seeds()), cda_structural())


_cases = itertools.count()


def run_property(check: Callable[[bytes], None], data: bytes) -> None:
    """``check(data)`` within :data:`CASE_SECONDS`; one case in :data:`TRACED_EVERY` also
    within :data:`MAX_CASE_MB` of memory allocated at its peak."""
    traced = next(_cases) % TRACED_EVERY == 0
    if traced:
        tracemalloc.start()
    try:
        with bounded_case():
            check(data)
        if traced:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            assert peak < MAX_CASE_MB, f"one case allocated {peak:.0f} MB at its peak"
    finally:
        if traced:
            tracemalloc.stop()


__all__ = [
    "CASE_SECONDS",
    "PATIENT_TOKENS",
    "PROFILE",
    "cda_inputs",
    "cda_seeds",
    "flow_settings",
    "hl7_inputs",
    "hl7_seeds",
    "leaks",
    "mail_inputs",
    "mail_seeds",
    "peak_rss_mb",
    "refusal_is_coded",
    "run_property",
    "xdm_inputs",
    "xdm_seeds",
]
