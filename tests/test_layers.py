"""The package's layers (docs/architecture.md): a module imports from its own layer or the ones
below it, never from above, and no module grows past the size a reader takes in at once."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "differ"

# from the bottom up; a module's layer is its folder's (or, at the top, its own name's)
LAYERS = [
    {"errors", "device", "interrupts", "orphans", "store"},
    {"envs"},
    {"nets"},
    {"replay"},
    {"acting"},
    {"learners"},
    {"config"},  # imports the learner and mixer registries only to check names
    {"assemble"},
    {"run"},
    {"commands", "experiments"},
    {"api", "cli", "policy", "__init__", "__main__"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
MAX_LINES = 365


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield path, list(rel.parts)


def layer(parts: list[str]) -> str:
    """parts of a module path inside differ/ -> its layer's name."""
    return parts[1] if len(parts) > 1 else "__init__"


def imported(path: Path, parts: list[str]):
    """The differ modules `path` imports (at any depth: lazy imports count too)."""
    package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = base + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == "differ":
                target = node.module.split(".")
            else:
                continue
            if len(target) == 1:  # from . import x: x is the module
                for alias in node.names:
                    yield target + [alias.name]
            else:
                yield target
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "differ":
                    yield alias.name.split(".")


def test_every_module_has_a_layer():
    missing = {layer(p) for _, p in modules()} - set(RANK)
    assert not missing, f"modules outside every layer: {missing}"


def test_no_module_imports_from_a_higher_layer():
    bad = []
    for path, parts in modules():
        own = RANK[layer(parts)]
        for target in imported(path, parts):
            name = layer(target)
            if name in RANK and RANK[name] > own:
                bad.append(f"{'.'.join(parts)} -> {'.'.join(target)}")
    assert not bad, "imports from a higher layer:\n" + "\n".join(bad)


def test_no_module_is_too_long_to_read_at_once():
    long = {
        str(p.relative_to(PACKAGE.parent)): n
        for p, _ in modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
