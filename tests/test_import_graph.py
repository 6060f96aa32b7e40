"""The package's import picture: low-level modules do not pull in the heavy ones."""
import ast
from pathlib import Path

import darkdeblur

PACKAGE = Path(darkdeblur.__file__).parent


def _module_file(name: str) -> Path | None:
    parts = name.split(".")[1:]
    for candidate in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if candidate.is_file():
            return candidate
    return None


def _imports(name: str) -> set[str]:
    """darkdeblur modules that module ``name`` imports at its top level or inside functions."""
    path = _module_file(name)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c.startswith("darkdeblur") and _module_file(c)}
    return found


def _reachable(name: str) -> set[str]:
    """Every darkdeblur module that importing ``name`` runs, the top-level package aside.

    (The package's ``__init__`` loads the public API for ``import darkdeblur`` users; a module
    deep inside is judged by what it asks for itself.)
    """
    seen, todo = set(), [name]
    while todo:
        current = todo.pop()
        parts = current.split(".")
        parents = {".".join(parts[:i]) for i in range(2, len(parts))}  # a.b.c runs a.b first
        for module in (_imports(current) | parents) - seen:
            seen.add(module)
            todo.append(module)
    return seen


def test_image_io_and_safe_files_do_not_reach_the_models_or_checkpoints():
    for module in ("darkdeblur.image_io", "darkdeblur.safe_files", "darkdeblur.make_data"):
        reached = _reachable(module)
        assert "darkdeblur.models" not in reached and "darkdeblur.checkpoint" not in reached, (module, reached)


def test_the_graph_walker_sees_a_known_import():
    assert "darkdeblur.models" in _reachable("darkdeblur.checkpoint")
