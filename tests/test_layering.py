"""The layering as a test: every import of the package and the scripts, read with ast (function-level imports
included), checked against the arrows the design forbids."""

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# model.py and utils.py are the design card's shared modules (re-exports of the library), not scripts.
SHARED_MODULES = {"model", "utils"}
SCRIPTS = sorted(p.stem for p in ROOT.glob("*.py") if p.stem not in SHARED_MODULES)

# (importer prefix, forbidden prefixes, why); a prefix matches the module itself and everything below it.
RULES = [
    (
        "antispoof.networks",
        ("antispoof.checkpoints", "antispoof.audio", "antispoof.scoring", "antispoof.evaluation",
         "antispoof.reports", "antispoof.training", "antispoof.runs", "antispoof.api"),
        "networks import no file, audio, dataset or scoring code",
    ),
    ("antispoof.audio", ("antispoof.networks", "antispoof.checkpoints", "antispoof.scoring"),
     "audio decoding and dataset layouts import no network"),
    ("antispoof.evaluation", ("antispoof.checkpoints", "antispoof.networks", "antispoof.scoring",
                              "antispoof.reports", "antispoof.training"),
     "metrics and calibration work on scores: no checkpoint or network code"),
    ("antispoof.reports", ("antispoof.scoring.core", "antispoof.scoring.evaluate",
                           "antispoof.scoring.onnx_backend", "antispoof.scoring.setup", "antispoof.training",
                           "antispoof.api"),
     "reports read score files; they never score"),
    ("antispoof.scoring", ("antispoof.training", "antispoof.api"), "scoring never imports training"),
    ("antispoof.checkpoints", ("antispoof.scoring", "antispoof.training", "antispoof.reports",
                               "antispoof.api"),
     "checkpoint files sit below scoring"),
]  # fmt: skip
# The library never reads the command line: argparse and the flag helpers are the scripts' (and cli.py's).
COMMAND_LINE = ("argparse", "antispoof.cli")
# Readers of fairseq checkpoints, which pickle an argparse.Namespace: a data type there, not a command line.
ARGPARSE_AS_DATA = {
    "antispoof.checkpoints.files", "antispoof.checkpoints.reading", "antispoof.networks.keymaps",
}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, anywhere in it; `from a import b` counts as a and as a.b."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_arrows(sources: dict[str, Path]) -> list[str]:
    """'importer -> imported: why' for each import the rules forbid."""
    found = []
    for name, path in sorted(sources.items()):
        for imported in sorted(imports(path)):
            for importer, banned, why in RULES:
                if under(name, importer) and any(under(imported, b) for b in banned):
                    found.append(f"{name} -> {imported}: {why}")
            library = under(name, "antispoof") and name != "antispoof.cli"
            if library and any(under(imported, c) for c in COMMAND_LINE):
                if not (imported == "argparse" and name in ARGPARSE_AS_DATA):
                    found.append(f"{name} -> {imported}: the library never reads the command line")
            if name in SCRIPTS and imported.split(".")[0] in SCRIPTS and imported != name:
                found.append(f"{name} -> {imported}: no script imports another script (share via antispoof/)")
    return found


def test_no_forbidden_import():
    sources = {module_name(p): p for p in (ROOT / "antispoof").rglob("*.py")}
    sources.update({name: ROOT / f"{name}.py" for name in SCRIPTS})
    assert len(sources) > 40  # the package and the scripts were found
    arrows = forbidden_arrows(sources)
    assert not arrows, "forbidden imports:\n" + "\n".join(arrows)


def test_no_private_name_is_imported_across_modules():
    """A name another module needs is public: `from antispoof.x import _y` means _y is not private."""
    found = []
    for path in [*(ROOT / "antispoof").rglob("*.py"), *(ROOT / f"{name}.py" for name in SCRIPTS)]:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("antispoof"):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                found += [f"{module_name(path)}: {node.module}.{name}" for name in private]
    assert not found, "private names imported from another module:\n" + "\n".join(found)


def test_the_rules_catch_each_kind_of_arrow(tmp_path):
    """Each kind of forbidden arrow, planted in a copy of a real module, is reported (the rules can fail)."""
    planted = {
        "antispoof.networks": "import antispoof.checkpoints.files\n",
        "antispoof.evaluation.metrics": "from antispoof.networks import build_model\n",
        "antispoof.reports.plots": "def f():\n    from antispoof.scoring.core import score_items\n",
        "antispoof.scoring.core": "import argparse\n",
        "score": "import evaluate_custom\n",
    }
    sources = {}
    for name, line in planted.items():
        path = tmp_path / f"{name}.py"
        path.write_text(line)
        sources[name] = path
    arrows = forbidden_arrows(sources)
    assert [a.split(":")[0] for a in arrows] == [
        "antispoof.evaluation.metrics -> antispoof.networks",
        "antispoof.evaluation.metrics -> antispoof.networks.build_model",
        "antispoof.networks -> antispoof.checkpoints.files",
        "antispoof.reports.plots -> antispoof.scoring.core",
        "antispoof.reports.plots -> antispoof.scoring.core.score_items",
        "antispoof.scoring.core -> argparse",
        "score -> evaluate_custom",
    ]


def test_flag_helpers_and_package_import_no_torch():
    """`import antispoof` (its version) and the flag helpers every --help builds on load no torch."""
    code = "import sys, antispoof, antispoof.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_readme_layout_table_names_every_module():
    """README's package table and the package tree agree: every module listed, none listed that is gone."""
    text = (ROOT / "README.md").read_text()
    listed = set()
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 3 and cells[1].startswith("`antispoof/"):
            folder = cells[1].strip("`")
            listed.update(f"{folder}{name}" for name in re.findall(r"`([\w.]+\.(?:py|json))`", cells[2]))
    package = ROOT / "antispoof"
    files = [p.relative_to(package) for p in package.rglob("*") if p.suffix in (".py", ".json")]
    # Empty package markers are not listed; networks/__init__.py holds code (the families, build_model).
    present = {f"antispoof/{p}" for p in files if p.name != "__init__.py" or str(p) == "networks/__init__.py"}
    assert not present - listed, f"modules missing from README's package table: {sorted(present - listed)}"
    assert not listed - present, f"README's table names modules that do not exist: {sorted(listed - present)}"
