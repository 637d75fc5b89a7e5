"""The UI is Russian and ready for other languages: every user-facing string goes through
gettext, Babel extracts them with web/babel.cfg, and ``?lang=en`` switches to the English catalogue."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from tests.acceptance.conftest import Client
from tests.acceptance.test_ui import Login, one, page, text
from web.ui import i18n

WEB = Path(__file__).resolve().parents[2] / "web"
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
PLACEHOLDER = re.compile(r"%\((\w+)\)s")
GETTEXT = {"_", "_l", "gettext", "lazy_gettext", "ngettext"}


def extracted() -> dict[str, list[str]]:
    """msgid -> where it was found, as ``pybabel extract -F web/babel.cfg -k _l`` finds them."""
    with (WEB / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh, "babel.cfg")
    keywords = {**DEFAULT_KEYWORDS, "_l": None}
    found: dict[str, list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(WEB), method_map, options_map, keywords=keywords
    ):
        msgid = message if isinstance(message, str) else message[0]
        found.setdefault(msgid, []).append(f"{filename}:{lineno}")
    return found


def test_babel_extracts_a_few_hundred_messages_from_templates_and_code() -> None:
    messages = extracted()
    assert len(messages) >= 300, len(messages)
    where = {m: {w.split("/")[0] for w in places} for m, places in messages.items()}
    assert "templates" in where["Входящие"]
    assert "ui" in where["Заполните это поле."]  # web/ui/forms.py
    for sample in ("в работе", "Март", "Пн", "Дело начато", "Координатор (РЦОКИО)", "комментарий пуст"):
        assert sample in messages, sample
    for msgid in messages:
        assert CYRILLIC.search(msgid) or msgid in ("API", "XML", "CSV", "XLSX"), f"not Russian: {msgid!r}"


def _template_text(source: str) -> str:
    """A template with its Jinja comments, statements and expressions removed: the literal text."""
    source = re.sub(r"\{#.*?#\}", "", source, flags=re.DOTALL)
    source = re.sub(r"\{%.*?%\}", "", source, flags=re.DOTALL)
    return re.sub(r"\{\{.*?\}\}", "", source, flags=re.DOTALL)


def test_no_russian_text_in_a_template_bypasses_gettext() -> None:
    offenders = []
    for template in sorted((WEB / "templates").glob("*.html")):
        for line in _template_text(template.read_text(encoding="utf-8")).splitlines():
            if CYRILLIC.search(line):
                offenders.append(f"{template.name}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
    # Inside expressions too, Russian literals are arguments of _() (or the language switch's endonym).
    for template in sorted((WEB / "templates").glob("*.html")):
        source = re.sub(r"\{#.*?#\}", "", template.read_text(encoding="utf-8"), flags=re.DOTALL)
        for literal in re.findall(r"'([^'\n]*)'", " ".join(re.findall(r"\{[{%].*?[%}]\}", source, flags=re.DOTALL))):
            if CYRILLIC.search(literal) and literal != "Русский":
                assert re.search(r"_\(\s*'" + re.escape(literal) + "'", source), f"{template.name}: {literal!r}"


def test_no_russian_string_in_the_ui_code_bypasses_gettext() -> None:
    offenders = []
    for module in sorted((WEB / "ui").glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        translated: set[int] = set()
        docstrings: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in GETTEXT:
                translated.update(id(arg) for arg in node.args)
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body:
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    docstrings.add(id(first.value))
            if isinstance(node, ast.ClassDef):  # field docs are comments for people, not pages
                docstrings.update(
                    id(s.value) for s in node.body if isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant)
                )
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and CYRILLIC.search(node.value)
                and id(node) not in translated | docstrings
            ):
                offenders.append(f"{module.name}:{node.lineno}: {node.value[:60]!r}")
    assert not offenders, "\n".join(offenders)


def test_the_english_catalogue_compiles_and_has_no_stale_or_broken_entries(tmp_path: Path) -> None:
    po_path = WEB / "translations" / "en" / "LC_MESSAGES" / "messages.po"
    with po_path.open("rb") as fh:
        catalogue = read_po(fh, locale="en")
    messages = extracted()
    translated = [m for m in catalogue if m.id and m.string]
    assert len(translated) >= 20
    for message in translated:
        assert message.id in messages, f"stale translation: {message.id!r}"
        assert set(PLACEHOLDER.findall(message.id)) == set(PLACEHOLDER.findall(str(message.string))), message.id
    compiled = i18n.compile_catalogues(WEB / "translations", tmp_path)
    assert compiled == tmp_path
    with (tmp_path / "en" / "LC_MESSAGES" / "messages.mo").open("rb") as fh:
        mo = read_mo(fh)
    assert mo.get("Входящие").string == "Inbox"  # type: ignore[union-attr]


def test_lang_en_switches_the_pages_to_english_and_back(client: Client, login: Login) -> None:
    doc = page(client.get("/login?lang=en"))
    assert doc.get("lang") == "en"
    assert text(one(doc, "//h1")) == "Sign in"
    assert text(one(doc, "//label[@for='login']")) == "Login"
    assert text(one(doc, "//label[@for='password']")) == "Password"
    assert text(one(doc, "//a[.skip]")) == "Skip to content"
    switch = one(doc, "//a[.lang-switch]")
    assert switch.get("hreflang") == "ru" and text(switch) == "Русский"
    # The choice is remembered for the next pages.
    again = page(client.get("/login"))
    assert again.get("lang") == "en"
    failed = page(client.login("troitsk-go", "wrong"), 401)
    assert text(one(failed, "//*[@role='alert']")) == "Wrong login or password."

    browser = login("coordinator")
    doc = page(browser.get("/?lang=en&tab=mine"))
    assert doc.get("lang") == "en"
    assert [text(a) for a in doc.xpath("//nav[@id='nav']/ul[1]/li/a")][:3] == ["Inbox", "Processes", "Cases"]
    assert text(one(doc, "//a[@aria-current='page'][contains(@href, 'tab=')]")).startswith("My tasks")
    switch = urlsplit(one(doc, "//a[.lang-switch]").get("href"))
    assert switch.path == "/" and parse_qs(switch.query) == {"tab": ["mine"], "lang": ["ru"]}
    # Messages without a translation yet fall back to Russian rather than failing.
    profile = page(browser.get("/profile"))
    assert text(one(profile, "//h2[@id='password']")) == "Change the password"
    assert text(one(profile, "//label[@for='old_password']")) == "Текущий пароль"
    back = page(browser.get("/?lang=ru"))
    assert back.get("lang") == "ru" and text(one(back, "//h1")) == "Входящие"
    assert page(browser.get("/")).get("lang") == "ru"
    assert page(browser.get("/?lang=xx")).get("lang") == "ru", "an unknown language is ignored"
