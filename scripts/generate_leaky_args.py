"""Write csrc/include/snnkernels/leaky_args.h and docs/neuron.md's settings table from
snnkernels/ops/leaky_settings.py (the C++ copies of the leaky neuron's arguments; docs/neuron.md "The neuron's
settings"). Run after editing the settings; the native
extension must then be rebuilt. python_tests/ops/test_neuron_settings.py fails while the file is stale."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    # by path, so that no torch import is needed to generate the header
    spec = importlib.util.spec_from_file_location("leaky_settings", ROOT / "snnkernels" / "ops" / "leaky_settings.py")
    settings = importlib.util.module_from_spec(spec)
    sys.modules["leaky_settings"] = settings
    spec.loader.exec_module(settings)
    _write(ROOT / settings.CXX_HEADER, settings.cxx_header())
    doc = ROOT / "docs" / "neuron.md"
    text = doc.read_text()
    start = text.index("| setting | type | default |")
    end = text.index("\n\n", start) + 1
    _write(doc, text[:start] + settings.docs_table() + text[end:])
    return 0


def _write(path: Path, text: str) -> None:
    if path.exists() and path.read_text() == text:
        print(f"{path.relative_to(ROOT)}: up to date")
        return
    path.write_text(text)
    print(f"{path.relative_to(ROOT)}: written")


if __name__ == "__main__":
    sys.exit(main())
