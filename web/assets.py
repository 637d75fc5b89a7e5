"""Copy the front-end files the pages use from node_modules/ into web/static/vendor/.

``make install`` runs ``npm ci`` (packages from the npm registry, versions pinned by
package-lock.json) and then ``python -m web.assets``. Nothing here is committed.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENDOR = Path(__file__).resolve().parent / "static" / "vendor"
FILES = {
    "bpmn-js/dist/bpmn-navigated-viewer.production.min.js": "bpmn-js/bpmn-navigated-viewer.production.min.js",
    "bpmn-js/dist/assets/diagram-js.css": "bpmn-js/diagram-js.css",
    "bpmn-js/dist/assets/bpmn-js.css": "bpmn-js/bpmn-js.css",
    "bpmn-js/LICENSE": "bpmn-js/LICENSE",
}


def install(node_modules: Path = ROOT / "node_modules", vendor: Path = VENDOR) -> list[Path]:
    copied = []
    for source, target in FILES.items():
        src = node_modules / source
        if not src.is_file():
            raise FileNotFoundError(f"{src} is missing: run `npm ci` in {node_modules.parent}")
        dst = vendor / target
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        copied.append(dst)
    return copied


def main() -> None:
    try:
        for path in install():
            print(f"vendor: {path.relative_to(ROOT)}")
    except FileNotFoundError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
