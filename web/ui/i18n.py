"""Translations: the .po catalogues under web/translations/ compiled to .mo when the app starts.

Only the .po files are kept in the repository. Each process compiles them into a private
temporary directory (created with mode 0700, removed at exit) and adds it to Flask-Babel's
translation directories, so a read-only install works and no other user can plant a catalogue
(translated strings are trusted markup in the templates). A catalogue that fails to compile is
logged and skipped: the pages then show the Russian source strings.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask.sansio.app import App

log = logging.getLogger("agglo.web")

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"


def catalogues(source: Path = TRANSLATIONS) -> list[Path]:
    """The .po files: ``<source>/<locale>/LC_MESSAGES/<domain>.po``."""
    return sorted(source.glob("*/LC_MESSAGES/*.po"))


def compile_catalogues(source: Path = TRANSLATIONS, target: Path | None = None) -> Path | None:
    """Compile every .po under ``source`` into ``target`` (a new private directory by default)."""
    found = catalogues(source)
    if not found:
        return None
    if target is None:
        try:
            target = Path(tempfile.mkdtemp(prefix="agglo-i18n-"))
        except OSError as exc:
            log.warning("no temporary directory for the translations (%s): the pages stay in Russian", exc)
            return None
        atexit.register(shutil.rmtree, target, ignore_errors=True)
    for po in found:
        relative = po.relative_to(source).with_suffix(".mo")
        try:
            with po.open("rb") as fh:
                catalog = read_po(fh, locale=relative.parts[0], domain=po.stem)
            out = target / relative
            out.parent.mkdir(parents=True, exist_ok=True)
            with out.open("wb") as fh:
                write_mo(fh, catalog)
        except Exception:
            log.exception("translation catalogue %s could not be compiled; it is skipped", po)
    return target


@cache
def compiled_once() -> Path | None:
    """The catalogues compiled once per process (every app of the process shares them)."""
    return compile_catalogues()


def install(app: App) -> None:
    """Let Flask-Babel (already set up on ``app``) find the compiled catalogues."""
    babel = app.extensions.get("babel")
    if babel is None:
        return
    compiled = compiled_once()
    if compiled is not None and str(compiled) not in babel.translation_directories:
        babel.translation_directories.append(str(compiled))
