"""Hardened XML parsing for every document the product reads (BPMN, xmlcalendar, ...).

A BPMN file is code. We refuse, before lxml sees a single entity:

* any document type declaration (no DTD at all, so no internal or external entities,
  no parameter entities and no entity-expansion bombs);
* processing instructions other than the XML declaration (``<?xml-stylesheet?>`` etc.);
* documents over a size limit.

lxml is then run with entity resolution, DTD loading, network access and huge trees all
switched off, so even a declaration that slipped past the pre-check could not resolve.
Callers get an :class:`lxml.etree._ElementTree` with line numbers; nothing else in the
product parses XML from bytes or paths.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

from .errors import Problem, UnsafeXml

DEFAULT_MAX_BYTES = 5 * 1024 * 1024

_DOCTYPE = re.compile(rb"<!\s*DOCTYPE", re.IGNORECASE)
_ENTITY = re.compile(rb"<!\s*ENTITY", re.IGNORECASE)
_PI = re.compile(rb"<\?(?!xml[\s?])", re.IGNORECASE)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=False,
        remove_pis=True,
        collect_ids=False,
    )


def _decode_for_scan(data: bytes) -> bytes:
    """Return the document as UTF-8 bytes for the pre-scan.

    A DOCTYPE hidden in UTF-16 or UTF-32 would not match a byte regex, so documents with a
    BOM or a wide encoding are transcoded first; undecodable input is refused.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or (len(data) > 1 and (data[0] == 0 or data[1] == 0)):
        for encoding in ("utf-16", "utf-32"):
            try:
                return data.decode(encoding).encode("utf-8")
            except UnicodeDecodeError:
                continue
        raise UnsafeXml([Problem("undecodable wide-character XML")])
    return data


def parse_xml(data: bytes | str, filename: str | None = None, max_bytes: int = DEFAULT_MAX_BYTES) -> etree._ElementTree:
    """Parse ``data`` safely; raise :class:`UnsafeXml` naming the reason and the file.

    Well-formedness errors are reported as :class:`UnsafeXml` too (with the line lxml gave),
    since a document we cannot parse safely is refused in the same way.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise UnsafeXml([Problem(f"document is {len(raw)} bytes, over the limit of {max_bytes}", file=filename)])
    scan = _decode_for_scan(raw)
    for pattern, reason in (
        (_DOCTYPE, "document type declarations (DTD) are not allowed"),
        (_ENTITY, "entity declarations are not allowed"),
        (_PI, "processing instructions are not allowed"),
    ):
        match = pattern.search(scan)
        if match:
            raise UnsafeXml([Problem(reason, file=filename, line=scan.count(b"\n", 0, match.start()) + 1)])
    try:
        root = etree.fromstring(raw, parser=_parser())
    except etree.XMLSyntaxError as exc:
        lineno = exc.lineno if isinstance(exc.lineno, int) else None
        raise UnsafeXml([Problem(f"not well-formed XML: {exc.msg}", file=filename, line=lineno)]) from exc
    tree = root.getroottree()
    docinfo: Any = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXml([Problem("document type declarations (DTD) are not allowed", file=filename)])
    return tree
