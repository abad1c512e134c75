"""No module uses another module's private (underscore) names: what a module shares with its
neighbours has a public name, so a reader can tell it apart from what it keeps to itself.

Checked on the source, without importing it: every `from ganlib... import _x`, and every
`alias._x` where alias names a ganlib module (`import ganlib.a.b as alias`,
`from ganlib.a import b`). Attributes of objects (`self._x`, `gan._x`) are not module names.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("ganlib", "bench")


def _is_private(name):
    return name.startswith("_") and not name.startswith("__")


def _is_module(dotted):
    """Whether `dotted` (e.g. "ganlib.metrics.distances") is a module or package in the repo."""
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _dotted(node):
    """ "a.b.c" for the expression a.b.c, or None for anything but names and attributes."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


class _Scope:
    """The names one function (or the module) binds: those bound to a ganlib module, the others."""

    def __init__(self, node):
        self.modules, self.others = {}, set()
        for child in _own_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.asname is not None:
                        self._bind(alias.asname, alias.name)
                    else:  # `import a.b.c` binds `a`
                        self._bind(alias.name.partition(".")[0], alias.name.partition(".")[0])
            elif isinstance(child, ast.ImportFrom):
                for alias in child.names:
                    module = f"{child.module}.{alias.name}"
                    self._bind(alias.asname or alias.name, module if child.level == 0 else None)
            elif isinstance(child, ast.Name) and not isinstance(child.ctx, ast.Load):
                self.others.add(child.id)
            elif isinstance(child, ast.arg):
                self.others.add(child.arg)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                self.others.add(child.name)

    def _bind(self, name, module):
        if module is not None and module.startswith("ganlib") and _is_module(module):
            self.modules[name] = module
        else:
            self.others.add(name)

    def binds(self, name):
        return name in self.modules or name in self.others

    def module(self, name):
        """The ganlib module `name` stands for here, or None if it may be anything else too."""
        return None if name in self.others else self.modules.get(name)


def _own_nodes(node):
    """The nodes of one scope: the function's arguments and body, not its nested functions'."""
    todo = list(ast.iter_child_nodes(node))
    while todo:
        child = todo.pop()
        yield child
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            # Its name belongs to this scope, its arguments' defaults too; the rest is its own.
            outer = [*child.args.defaults, *child.args.kw_defaults]
            todo.extend(d for d in outer + getattr(child, "decorator_list", []) if d is not None)
            continue
        todo.extend(ast.iter_child_nodes(child))


def _offences(path):
    """`module.name` for every private name of another ganlib module that `path` uses."""
    tree = ast.parse(path.read_text(), str(path))
    found = []

    def visit(node, scopes):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] == "ganlib":
                found.extend(f"{node.module}.{a.name}" for a in node.names if _is_private(a.name))
        elif isinstance(node, ast.Attribute) and _is_private(node.attr):
            dotted = _dotted(node.value)
            if dotted is not None:
                first, _, rest = dotted.partition(".")
                # The innermost scope that binds the name decides what it is.
                scope = next((s for s in reversed(scopes) if s.binds(first)), None)
                module = scope.module(first) if scope is not None else None
                if module is not None:
                    module = f"{module}.{rest}" if rest else module
                    if _is_module(module):
                        found.append(f"{module}.{node.attr}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            scopes = [*scopes, _Scope(node)]
        for child in ast.iter_child_nodes(node):
            visit(child, scopes)

    visit(tree, [_Scope(tree)])
    return found


def test_no_module_uses_another_modules_private_names():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for folder in CHECKED
        for path in sorted((ROOT / folder).rglob("*.py"))
        for name in _offences(path)
    ]
    assert not offenders, "private names used from another module:\n" + "\n".join(offenders)


def test_the_check_sees_imports_and_module_attributes_but_not_objects(tmp_path):
    source = tmp_path / "example.py"
    source.write_text(
        "from ganlib.metrics.coverage import _hidden, mode_coverage\n"
        "from ganlib.metrics import distances\n"
        "import ganlib.data.toy_faces as faces\n"
        "import ganlib.training.callbacks\n"
        "distances._helper\n"
        "faces._TABLE\n"
        "ganlib.training.callbacks._check\n"
        "mode_coverage._cache, faces.__doc__\n"
        "def train(distances):\n"
        "    return distances._helper, self._x\n"
        "def run(gan):\n"
        "    gan._auto_steps_per_execution = True\n"
    )
    assert _offences(source) == [
        "ganlib.metrics.coverage._hidden",
        "ganlib.metrics.distances._helper",
        "ganlib.data.toy_faces._TABLE",
        "ganlib.training.callbacks._check",
    ]
