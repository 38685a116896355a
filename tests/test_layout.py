"""The package's rooms and their import rules (docs/DESIGN.md, "Rooms"), read from the source with
``ast``: every import counts, lazy ones inside functions included (not those under
``if TYPE_CHECKING:``)."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

import ip_tsn

PACKAGE = Path(ip_tsn.__file__).resolve().parent
REPO = PACKAGE.parents[1]
# the rooms of src/ip_tsn, left to right: a module may import only rooms to the left of its own
ORDER = ["atomic", "settings", "codec", "data", "config", "models", "evaluation", "lit", "deploy", "stages", "cli"]
# rooms further barred from some rooms to their left
BARRED = {"evaluation": {"models"}}
# third-party packages a room never imports
BARRED_PACKAGES = {
    "atomic": {"torch", "pytorch_lightning", "lightning"},
    "settings": {"torch", "pytorch_lightning", "lightning", "omegaconf"},
    "config": {"torch", "pytorch_lightning", "lightning"},
    "codec": {"torch", "torchvision", "pytorch_lightning", "lightning"},
    "models": {"pytorch_lightning", "lightning", "torchmetrics"},
    "evaluation": {"torch", "torchvision", "pytorch_lightning", "lightning", "torchmetrics"},
}
# the scripts next to the package: which rooms they may import
SCRIPTS = {"data_prep": {"atomic", "settings", "codec", "data"}, "benchmarks": set(ORDER)}


def room_of(module: str) -> str:
    """``ip_tsn.lit.classifier`` -> ``lit``; ``ip_tsn.atomic`` -> ``atomic``; ``ip_tsn`` -> ``atomic``
    (the package's ``__init__`` imports nothing)."""
    parts = module.split(".")
    assert parts[0] == "ip_tsn", module
    if len(parts) == 1:
        return "atomic"
    if parts[1] not in ORDER:
        raise AssertionError(f"ip_tsn.{parts[1]} is in no room of docs/DESIGN.md")
    return parts[1]


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return skip


def imports(path: Path, package: str | None) -> list[tuple[int, str]]:
    """``(line, absolute module name)`` of every import in ``path``; ``from X import name`` also
    yields ``X.name`` (it may be a submodule). ``package``: the file's package, for relative imports."""
    tree = ast.parse(path.read_text(), str(path))
    skip = _type_checking_nodes(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                assert package, f"{path}: relative import outside the package"
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names if base == "ip_tsn"]
    return found


def package_modules() -> list[tuple[Path, str, str]]:
    """``(file, its package, its room)`` of every module under src/ip_tsn."""
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        name = name.removesuffix(".__init__")
        out.append((path, package, room_of(name)))
    return out


def test_every_module_is_in_a_room():
    rooms = {room for _, _, room in package_modules()}
    assert rooms == set(ORDER)


def test_no_module_imports_a_room_to_its_right():
    bad = []
    for path, package, room in package_modules():
        allowed = set(ORDER[: ORDER.index(room) + 1]) - BARRED.get(room, set())
        for line, target in imports(path, package):
            if target.split(".")[0] == "ip_tsn" and room_of(target) not in allowed:
                bad.append(f"{path.relative_to(REPO)}:{line}: {room} imports {target} ({room_of(target)})")
            if target.split(".")[0] in BARRED_PACKAGES.get(room, set()):
                bad.append(f"{path.relative_to(REPO)}:{line}: {room} imports {target}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("room, never", [("deploy", {"stages", "cli"}), ("evaluation", {"lit", "models"}),
                                         ("lit", {"deploy", "stages", "cli"})])
def test_named_rules(room, never):
    for path, package, r in package_modules():
        if r == room:
            hits = [t for _, t in imports(path, package) if t.startswith("ip_tsn.") and room_of(t) in never]
            assert not hits, f"{path.relative_to(REPO)} imports {hits}"


@pytest.mark.parametrize("folder", sorted(SCRIPTS))
def test_scripts_use_their_rooms_and_public_names_only(folder):
    """data_prep imports atomic, settings, codec and data only; neither it nor the benchmarks import a private
    name of the package or touch a private attribute (``v._decode_gop``; their own ``self._x`` and
    the standard library's ``os._exit`` aside)."""
    bad = []
    for path in sorted((REPO / folder).glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for line, target in imports(path, None):
            if target.split(".")[0] == "ip_tsn":
                if room_of(target) not in SCRIPTS[folder]:
                    bad.append(f"{path.name}:{line}: imports {target}")
                if any(p.startswith("_") and not p.startswith("__") for p in target.split(".")):
                    bad.append(f"{path.name}:{line}: imports the private {target}")
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "os", "sys"))):  # os._exit is public
                bad.append(f"{path.name}:{node.lineno}: private attribute {ast.unparse(node)}")
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ip_tsn"):
                bad += [f"{path.name}:{node.lineno}: imports the private {node.module}.{a.name}"
                        for a in node.names if a.name.startswith("_")]
    assert not bad, "\n".join(bad)


def test_evaluation_loads_neither_lightning_nor_torch():
    code = ("import sys, ip_tsn.evaluation, ip_tsn.evaluation.report, ip_tsn.evaluation.splits, "
            "ip_tsn.evaluation.stats; "
            "print(' '.join(m for m in ('pytorch_lightning', 'lightning', 'torch', 'ip_tsn.lit', "
            "'ip_tsn.models') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PACKAGE.parent), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == []


def test_one_module_renames_files_into_place():
    """Only ``ip_tsn/atomic.py`` calls ``os.replace`` / ``os.rename`` / ``Path.rename`` / ``shutil.move``
    (issue 22: every file is written through ``ip_tsn.atomic``), in the package and the scripts; and
    none writes a result with ``Path.write_text`` / ``write_bytes`` or a bare ``savefig``."""
    renames, direct = [], []
    files = [p for p in sorted(PACKAGE.rglob("*.py"))] + [p for d in SCRIPTS for p in sorted((REPO / d).glob("*.py"))]
    for path in files:
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            name, owner = node.func.attr, ast.unparse(node.func.value)
            if (name in ("replace", "rename") and owner == "os") or (name == "move" and owner == "shutil") or \
                    (name == "rename" and owner != "os"):
                renames.append(f"{path.relative_to(REPO)}:{node.lineno}")
            if name in ("write_text", "write_bytes") and owner != "tmp":
                direct.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node.func)}")
            if name == "savefig" and not (node.args and ast.unparse(node.args[0]) == "tmp"):
                direct.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    assert [r.split(":")[0] for r in renames] == ["src/ip_tsn/atomic.py"], renames
    assert not direct, direct


def test_the_config_check_loads_neither_torch_nor_lightning():
    """A typo's one line comes before torch and Lightning are imported (issue 21: ~1 s, not 8-10 s):
    the config check reads the settings dataclasses only, and Trainer's arguments from its source."""
    code = ("import sys; from ip_tsn.cli import main; "
            "code = main(['fit', 'experiments/istream.yaml', 'model.lrr=1']); "
            "heavy = sorted(m for m in ('torch', 'pytorch_lightning', 'torchvision') if m in sys.modules); "
            "print(code, heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.stdout.strip() == "2 []", out.stdout + out.stderr
    assert "did you mean model.optim.lr?" in out.stderr
