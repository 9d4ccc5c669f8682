"""The package's floors: no import circle, and no import from a lower layer to a higher one.

Every non-test Python file of the project (the package and benchmarks/) is parsed with `ast`;
imports inside functions count too (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "tfnet_jax"

# Lowest first. A module belongs to the first layer with a prefix that names it or a package
# above it (`tfnet_jax` itself: the package's __init__ only); it may import from its own layer
# or lower ones.
LAYERS = [
    ("base", ["tfnet_jax.errors", "tfnet_jax.schemas", "tfnet_jax.maths", "tfnet_jax.atomic",
              "tfnet_jax.host_memory"]),
    ("data", ["tfnet_jax.data"]),
    ("graph", ["tfnet_jax.graph"]),
    ("models", ["tfnet_jax.models"]),
    ("train", ["tfnet_jax.train.engine", "tfnet_jax.train.checkpoint", "tfnet_jax.train.distributed",
               "tfnet_jax.train.optim", "tfnet_jax.train.losses", "tfnet_jax.train.metrics_log",
               "tfnet_jax.train.run_info", "tfnet_jax.train.run_lock", "tfnet_jax.train"]),
    ("eval", ["tfnet_jax.eval"]),
    ("analysis", ["tfnet_jax.analysis"]),
    ("tasks", ["tfnet_jax.tasks"]),
    ("config/api", ["tfnet_jax.config", "tfnet_jax.config_checks", "tfnet_jax.api", "tfnet_jax"]),
]
# The top floor: the command wrapper, the command modules and the benchmarks.
COMMANDS = ["tfnet_jax.cli", "tfnet_jax.run", "tfnet_jax.predict", "tfnet_jax.lightup",
            "tfnet_jax.core_tfs", "tfnet_jax.disease", "tfnet_jax.twas", "tfnet_jax.networks",
            "tfnet_jax.train.__main__",
            "tfnet_jax.experiments", "benchmarks"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    files = list((ROOT / PACKAGE).rglob("*.py")) + list((ROOT / "benchmarks").rglob("*.py"))
    return {module_name(p): p for p in files}


def imports_of(path: Path, modules: dict[str, Path]) -> set[str]:
    """The project modules `path` imports, anywhere in the file."""
    found = set()
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolved against the file's package
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from pkg import mod` depends on the module; `from mod import name` on the module
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` -> the deepest module known
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def layer_of(module: str) -> int:
    if any(module == c or module.startswith(c + ".") for c in COMMANDS):
        return len(LAYERS)
    for index, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or (p != PACKAGE and module.startswith(p + ".")) for p in prefixes):
            return index
    raise AssertionError(f"{module}: in no layer; add it to LAYERS or COMMANDS in {__file__}")


def layer_label(index: int) -> str:
    return LAYERS[index][0] if index < len(LAYERS) else "commands"


@pytest.fixture(scope="module")
def graph():
    modules = project_modules()
    return {name: imports_of(path, modules) for name, path in modules.items()}


def test_no_upward_import(graph):
    upward = [f"{m} ({layer_label(layer_of(m))}) imports {d} ({layer_label(layer_of(d))})"
              for m, deps in sorted(graph.items()) for d in sorted(deps) if layer_of(d) > layer_of(m)]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_import_circle(graph):
    # Tarjan's strongly connected components: any component of 2+ modules is a circle.
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_checker_sees_an_upward_import_and_a_circle(tmp_path):
    # The parser and both rules, on a two-module toy: a lazy upward import closing a circle.
    modules = {"tfnet_jax.data.a": tmp_path / "a.py", "tfnet_jax.tasks.b": tmp_path / "b.py"}
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        for name, path in modules.items():
            path.parent.mkdir(parents=True, exist_ok=True)
        modules = {"tfnet_jax.data.a": tmp_path / "tfnet_jax/data/a.py",
                   "tfnet_jax.tasks.b": tmp_path / "tfnet_jax/tasks/b.py"}
        for path in modules.values():
            path.parent.mkdir(parents=True, exist_ok=True)
        modules["tfnet_jax.data.a"].write_text("def f():\n    from tfnet_jax.tasks.b import g\n")
        modules["tfnet_jax.tasks.b"].write_text("from tfnet_jax.data import a\n")
        toy = {name: imports_of(path, modules) for name, path in modules.items()}
    finally:
        ROOT = saved
    assert toy == {"tfnet_jax.data.a": {"tfnet_jax.tasks.b"}, "tfnet_jax.tasks.b": {"tfnet_jax.data.a"}}
    with pytest.raises(AssertionError, match="lower layer to a higher"):
        test_no_upward_import(toy)
    with pytest.raises(AssertionError, match="circles"):
        test_no_import_circle(toy)


def test_import_changes_nothing_in_the_importing_process():
    # No jax and no malloc tuning on `import tfnet_jax`: only the commands (and an explicit
    # tfnet_jax.tune_host_memory()) tune the host process.
    import subprocess
    import sys
    code = ("import sys, tfnet_jax; print(sorted(m for m in ('jax', 'tfnet_jax.host_memory') "
            "if m in sys.modules)); tfnet_jax.tune_host_memory(); "
            "print('tfnet_jax.host_memory' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]


def test_readme_layout_matches_the_package_folders():
    import re
    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    block = layout[layout.index("```"):layout.index("```", layout.index("```") + 3)]
    listed = set(re.findall(r"tfnet_jax/([\w/]+)/", block))
    folders = {str(p.parent.relative_to(ROOT / PACKAGE)) for p in (ROOT / PACKAGE).rglob("__init__.py")
               if p.parent != ROOT / PACKAGE}
    assert listed == folders, f"README Layout lists {sorted(listed - folders)} that are not package " \
                              f"folders and misses {sorted(folders - listed)}"


SOURCE_NAMES = ("synthetic", "dir", "cmap", "anndata", "grn", "expression", "genosim", "genotypes")
# `name == "dir"`, `cfg.data.name != "cmap"`, `.get("name") == "grn"`: a branch on the data source.
SOURCE_BRANCH = re.compile(r'(\bname\b|\.get\("name"\))\s*(==|!=)\s*"(' + "|".join(SOURCE_NAMES) + r')"')
LOADERS = ("load_data_dir", "load_cmap", "load_anndata", "make_synthetic", "make_grn",
           "read_expression_data", "read_genotype_data", "load_simulated")


def test_data_load_is_the_one_dispatch_on_the_data_source():
    branches, loaders = [], []
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        module = module_name(path)
        if module == "tfnet_jax.data.load":
            continue
        text = path.read_text()
        branches += [f"{module}:{n}" for n, line in enumerate(text.splitlines(), 1) if SOURCE_BRANCH.search(line)]
        if not module.startswith("tfnet_jax.data."):  # a source's own modules may call each other
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.ImportFrom) and any(a.name in LOADERS for a in node.names):
                    loaders.append(f"{module}:{node.lineno}")
    assert not branches, "branches on the data source outside data/load.py: " + ", ".join(branches)
    assert not loaders, "a source's loader imported outside data/: " + ", ".join(loaders)
    assert SOURCE_BRANCH.search('if cfg.data.name == "dir":')  # the pattern sees a branch
