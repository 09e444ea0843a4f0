"""The package's shape: commands at the top, a family-agnostic core, one folder per model family that imports
no other family, one registry that knows them all; no import cycle, library modules never import command
modules, code cites only what users have."""

import ast
from pathlib import Path

import pytest

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "stargan_keras"
PACKAGE = PACKAGE_DIR.name


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE_DIR.rglob("*.py"))}


def is_package(name: str) -> bool:
    return MODULES[name].name == "__init__.py"


def imported_modules(name: str) -> set[str]:
    """Every package module that `name` imports, at module level or inside functions."""
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    package = name if is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            # `from pkg import sub` imports the submodule when there is one, else a name of pkg.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


def is_command(name: str) -> bool:
    """A `python -m stargan_keras.X` command: it runs `main()` when executed."""
    source = MODULES[name].read_text(encoding="utf-8")
    return 'if __name__ == "__main__":' in source


GRAPH = {name: imported_modules(name) for name in MODULES}


def test_the_walk_sees_real_edges():
    """Guard against a walker that finds nothing: known imports are present."""
    assert "stargan_keras.core.model_dir" in GRAPH["stargan_keras.families"]
    assert "stargan_keras.core.session" in GRAPH["stargan_keras.train"]
    assert "stargan_keras.v2.config" in GRAPH["stargan_keras.v2.networks"]
    assert "stargan_keras.core.trainer_base" in GRAPH["stargan_keras.v1.trainer"]
    commands = {name for name in MODULES if is_command(name)}
    assert {"stargan_keras.train", "stargan_keras.export", "stargan_keras.evaluate"} <= commands


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for successor in sorted(graph[node]):
            if state.get(successor) == 1:
                return path[path.index(successor):] + [successor]
            if successor not in state:
                cycle = visit(successor)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_a_planted_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    cycle = find_cycle(GRAPH)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("name", sorted(name for name in MODULES if not is_command(name)))
def test_library_modules_import_no_command_module(name):
    commands = sorted(m for m in GRAPH[name] if is_command(m))
    assert not commands, f"library module {name} imports command module(s) {commands}"


def test_code_does_not_cite_files_users_do_not_have():
    citing = [str(path.relative_to(PACKAGE_DIR.parent)) for path in MODULES.values()
              if "REFERENCE.md" in path.read_text(encoding="utf-8")]
    assert not citing, f"{citing} cite REFERENCE.md, which users do not have: cite the paper or the authors' code"


FAMILY_PACKAGES = ("stargan_keras.v2", "stargan_keras.v1")
REGISTRY = "stargan_keras.families"


def family_of_module(name: str) -> str | None:
    return next((f for f in FAMILY_PACKAGES if name == f or name.startswith(f + ".")), None)


def test_the_family_list_is_the_registry():
    from stargan_keras import families

    assert sorted(FAMILY_PACKAGES) == sorted(module.rpartition(".")[0] for module in families.FAMILY_MODULES.values())


def test_the_top_holds_only_commands_package_files_and_the_registry():
    top = {name for name in MODULES if name.count(".") == 1 and not is_package(name)}
    extra = sorted(name for name in top if not is_command(name)
                   and name not in ("stargan_keras.__main__", REGISTRY))
    assert not extra, f"library modules at the top of the package: {extra}; move them into a folder"


def test_families_never_import_each_other():
    crossing = sorted((name, target) for name, targets in GRAPH.items() for target in targets
                      if family_of_module(name) and family_of_module(target)
                      and family_of_module(name) != family_of_module(target))
    assert not crossing, f"one family imports another: {crossing}"


def test_only_families_the_registry_and_commands_import_a_family():
    """The core, serving/, metrics/, face/, data/ and the browser demo ask the registry for what is family-
    specific."""
    allowed = lambda name: family_of_module(name) or name == REGISTRY or is_command(name)  # noqa: E731
    offending = sorted((name, target) for name, targets in GRAPH.items() for target in targets
                       if family_of_module(target) and not allowed(name))
    assert not offending, f"shared modules import a family's modules: {offending}"


def _family_tests(path: Path) -> list[str]:
    """Lines that tell families apart by name (`x == "v1"`) or by a family-only attribute (`hasattr(x, "c_dim")`)."""
    import ast

    from stargan_keras import families

    names = set(families.names())
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in names for o in operands):
                found.append(f"{path.name}:{node.lineno} compares a family name")
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("hasattr", "getattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and node.args[1].value in ("c_dim", "v1", "img_size", "image_size", "num_domains")):
            found.append(f"{path.name}:{node.lineno} probes {node.args[1].value!r}")
    return found


def test_the_family_check_finds_planted_tests(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text('if config.model_family == "v1":\n    pass\nok = hasattr(model, "c_dim")\n')
    assert len(_family_tests(planted)) == 2


def test_no_module_outside_the_registry_tells_families_apart():
    found = [line for name, path in MODULES.items() if name != REGISTRY for line in _family_tests(path)]
    assert not found, f"ask the registry (stargan_keras.families) instead: {found}"


TESTS_DIR = PACKAGE_DIR.parent / "tests"
TEST_SUPPORT = ("harness", "references", "fixtures")  # shared test code, the PyTorch references, files


def test_the_tests_mirror_the_package():
    """tests/<folder>/test_<module>.py for stargan_keras/<folder>/<module>.py: a folder per package folder."""
    folders = {p.name for p in TESTS_DIR.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))}
    package_folders = {p.name for p in PACKAGE_DIR.iterdir() if (p / "__init__.py").exists()}
    assert folders - set(TEST_SUPPORT) <= package_folders, folders - set(TEST_SUPPORT) - package_folders


def test_no_test_module_imports_another():
    import ast

    offending = []
    for path in TESTS_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if any(name.startswith("tests.") and name.rpartition(".")[2].startswith("test_") for name in names):
                offending.append(f"{path.relative_to(TESTS_DIR)}:{node.lineno}")
    assert not offending, f"test modules import test modules (move what they share to tests/harness): {offending}"


def test_a_missing_component_skips_a_local_run_and_fails_in_ci(monkeypatch):
    """`require`: what CI installs is never skipped there (tests/harness/components.py)."""
    from tests.harness import components

    monkeypatch.setitem(components.COMPONENTS, "ffmpeg", lambda: "ffmpeg not on PATH")
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs ffmpeg: ffmpeg not on PATH"):
        components.require("ffmpeg")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs ffmpeg: ffmpeg not on PATH; .ci/run installs it"):
        components.require("ffmpeg")
    monkeypatch.setitem(components.COMPONENTS, "ffmpeg", lambda: None)
    assert components.require("ffmpeg") is None
