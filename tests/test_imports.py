"""Imports go one way: no circle among sat_keras's modules, imports inside functions counted."""

import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "sat_keras"


def module_names():
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def imported_modules(path, modules):
    """The sat_keras modules `path` imports anywhere in it (functions included).

    `from package import name` counts as importing the submodule package.name
    where that is a module, else the package itself. The parents a module's
    import runs first are not counted: Python has them already.
    """
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if child in modules else node.module)
    return {name for name in found if name in modules}


def import_graph():
    modules = module_names()
    return {name: imported_modules(path, modules) for name, path in modules.items()}


def find_cycle(graph):
    """One import circle as a list of modules, or None (depth-first search)."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return stack[stack.index(child):] + [child]
            if child not in state:
                cycle = visit(child)
                if cycle:
                    return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_checker_finds_a_circle_through_a_function_level_import(tmp_path):
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from sat_keras.models import presets\n")
    assert imported_modules(source, module_names()) == {"sat_keras.models.presets"}


def test_no_import_circle_in_the_package():
    graph = import_graph()
    assert len(graph) > 50 and graph["sat_keras.cli"]  # the graph was read
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_models_never_import_export_or_serving():
    for name, imported in import_graph().items():
        if name.startswith("sat_keras.models"):
            upward = sorted(m for m in imported
                            if m.startswith(("sat_keras.export", "sat_keras.serving")))
            assert not upward, f"{name} imports {upward}"


def test_import_sat_keras_in_a_fresh_interpreter():
    result = subprocess.run(
        [sys.executable, "-c", "import sat_keras; print(sat_keras.ShowAttendTell.__name__)"],
        capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ShowAttendTell"
