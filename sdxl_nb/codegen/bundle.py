"""The engine's own definitions as one script's text, verbatim, with what they use; no import of sdxl_nb left."""

# A script that re-creates a job must run the engine's rules, not a copy that drifts: Bundle.add("pkg.mod:Name")
# reads the source file the engine runs from, so the text embedded is the engine's when the script is written.

from __future__ import annotations

import ast
import builtins
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "sdxl_nb"


class NotEmbeddable(ValueError):
    """An engine definition that cannot be written into a plain script (it needs sdxl_nb at run time)."""


@dataclass
class _Module:
    name: str
    source: str
    tree: ast.Module
    definitions: dict[str, ast.stmt] = field(default_factory=dict)  # top-level name -> its statement
    imports: dict[str, tuple[ast.stmt, ast.alias]] = field(default_factory=dict)  # bound name -> import


def _load(name: str, cache: dict[str, _Module]) -> _Module:
    if name not in cache:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            raise NotEmbeddable(f"no source file for module {name}")
        source = Path(spec.origin).read_text(encoding="utf-8")
        module = _Module(name=name, source=source, tree=ast.parse(source))
        for node in module.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                module.definitions[node.name] = node
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Name):
                            module.definitions[leaf.id] = node
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                module.definitions[node.target.id] = node
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for alias in node.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    module.imports[bound] = (node, alias)
        cache[name] = module
    return cache[name]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # its parent is a module, not a package
        return False


def _annotation_names(node: ast.AST) -> set[int]:
    """ids of the Name nodes inside annotations (never evaluated: every embedded module uses postponed ones)."""
    inside: set[int] = set()
    for child in ast.walk(node):
        annotations = []
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            annotations.append(child.returns)
            arguments = child.args
            for arg in [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs, arguments.vararg,
                        arguments.kwarg]:
                if arg is not None:
                    annotations.append(arg.annotation)
        elif isinstance(child, ast.AnnAssign):
            annotations.append(child.annotation)
        for annotation in annotations:
            if annotation is not None:
                inside.update(id(leaf) for leaf in ast.walk(annotation))
    return inside


def _is_package_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").split(".")[0] == PACKAGE
    if isinstance(node, ast.Import):
        return any(alias.name.split(".")[0] == PACKAGE for alias in node.names)
    return False


def _type_checking_only(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


class Bundle:
    """Collects definitions (and what they use) in dependency order; `text()` is the script's embedded part."""

    def __init__(self, leave_out: tuple[str, ...] = ()):
        self.modules: dict[str, _Module] = {}
        self.order: list[tuple[str, str]] = []  # (module, name) of each embedded definition, dependencies first
        self.owner: dict[str, tuple[str, str]] = {}  # name in the script -> (module, name) that defines it
        self.third_party: dict[str, str] = {}  # bound name -> import statement text
        self.leave_out = set(leave_out)  # "module:name" of what this job never reaches: a stub that says so
        self.stubs: dict[str, str] = {}  # name -> the left-out "module:name" it stands for
        self._visiting: set[tuple[str, str]] = set()

    def add(self, qualified: str) -> str:
        """Embed "module:name" (and everything it uses); returns the name it has in the script."""
        module_name, _, name = qualified.partition(":")
        self._define(module_name, name)
        return name

    def _define(self, module_name: str, name: str) -> None:
        key = (module_name, name)
        if key in self.order or key in self._visiting:
            return
        module = _load(module_name, self.modules)
        if name in module.imports and name not in module.definitions:
            self._bind_import(module, name)  # a name the module itself imports (a re-export)
            return
        node = module.definitions.get(name)
        if node is None and _is_module(f"{module_name}.{name}"):
            raise NotEmbeddable(f"{module_name}.{name} is a module: what uses it needs {PACKAGE} at run time")
        if node is None:
            raise NotEmbeddable(f"{module_name} defines no {name}")
        if name in self.owner and self.owner[name] != key:
            other = ":".join(self.owner[name])
            raise NotEmbeddable(f"{module_name}:{name} and {other} would share one name in the script")
        self.owner[name] = key
        self._visiting.add(key)
        annotations = _annotation_names(node)
        for leaf in ast.walk(node):
            if isinstance(leaf, ast.Name) and id(leaf) not in annotations:
                self._resolve(module, leaf.id)
            elif isinstance(leaf, (ast.Import, ast.ImportFrom)) and _is_package_import(leaf):
                self._nested_import(module, leaf)
        self._visiting.discard(key)
        self.order.append(key)

    def _resolve(self, module: _Module, name: str) -> None:
        if name in module.definitions:
            self._define(module.name, name)
        elif name in module.imports:
            self._bind_import(module, name)

    def _bind_import(self, module: _Module, name: str) -> None:
        node, alias = module.imports[name]
        if _is_package_import(node):
            if not isinstance(node, ast.ImportFrom) or node.level or alias.asname:
                raise NotEmbeddable(f"{module.name} uses {PACKAGE} as a module ({ast.unparse(node)}): it needs "
                                    f"{PACKAGE} at run time")
            self._define_or_stub(node.module, alias.name)
            return
        statement = ast.unparse(ast.ImportFrom(module=node.module, names=[alias], level=0)
                                if isinstance(node, ast.ImportFrom) else ast.Import(names=[alias]))
        known = self.third_party.get(name)
        if known is not None and known != statement:
            raise NotEmbeddable(f"{name} is imported two ways: {known!r} and {statement!r}")
        if not (isinstance(node, ast.ImportFrom) and node.module == "__future__"):
            self.third_party[name] = statement

    def _nested_import(self, module: _Module, node: ast.stmt) -> None:
        if not isinstance(node, ast.ImportFrom) or node.level:
            raise NotEmbeddable(f"{module.name} uses {PACKAGE} as a module ({ast.unparse(node)}): it needs "
                                    f"{PACKAGE} at run time")
        for alias in node.names:
            if alias.asname:
                raise NotEmbeddable(f"{module.name} imports {alias.name} as {alias.asname}")
            self._define_or_stub(node.module, alias.name)

    def _define_or_stub(self, module_name: str, name: str) -> None:
        qualified = f"{module_name}:{name}"
        if qualified not in self.leave_out:
            self._define(module_name, name)
            return
        if self.stubs.get(name, qualified) != qualified or name in self.owner:
            raise NotEmbeddable(f"{qualified} is left out but its name is taken")
        self.stubs[name] = qualified

    # ---- text ----
    def text(self) -> str:
        parts, done = [], set()
        for name, qualified in sorted(self.stubs.items()):
            message = f"{qualified} is not part of this script (the job does not use it)"
            parts.append(f"def {name}(*args, **kwargs):  # left out\n    raise NotImplementedError({message!r})")
        for module_name, name in self.order:
            module = self.modules[module_name]
            if id(module.definitions[name]) in done:  # `a = b = ...` defines two names in one statement
                continue
            done.add(id(module.definitions[name]))
            parts.append(f"# {module_name}.{name} (the engine's source)\n" + self._source(module, module.definitions[name]))
        return "\n\n\n".join(parts)

    def imports(self) -> list[str]:
        return sorted(set(self.third_party.values()))

    def _source(self, module: _Module, node: ast.stmt) -> str:
        """The definition's lines as written (decorators included); a nested sdxl_nb import becomes `pass` (its
        names are embedded above) or, for one left out, a line that says so if it is ever reached."""
        lines = module.source.splitlines()
        first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        edits: dict[int, tuple[int, str]] = {}  # first line -> (last line, replacement)
        for leaf in ast.walk(node):
            if leaf is node or not isinstance(leaf, (ast.Import, ast.ImportFrom, ast.If)):
                continue
            if isinstance(leaf, ast.If) and not _type_checking_only(leaf):
                continue
            if isinstance(leaf, ast.If) or _is_package_import(leaf):
                indent = lines[leaf.lineno - 1][:leaf.col_offset]
                edits[leaf.lineno] = (leaf.end_lineno, indent + self._replacement(leaf))
        out, number = [], first
        while number <= node.end_lineno:
            if number in edits:
                last, replacement = edits[number]
                out.append(replacement)
                number = last + 1
            else:
                out.append(lines[number - 1])
                number += 1
        return "\n".join(out)

    def _replacement(self, node: ast.stmt) -> str:
        if isinstance(node, ast.If):
            return "pass  # type-checking imports"
        names = ", ".join(alias.name for alias in node.names)
        return f"pass  # {names}: embedded above"


def unresolved_names(bundle: Bundle) -> list[str]:
    """Names the embedded definitions use that nothing defines (a test guard: the bundle must be closed)."""
    defined = set(bundle.owner) | set(bundle.third_party) | set(bundle.stubs) | set(dir(builtins))
    missing = set()
    for module_name, name in bundle.order:
        node = bundle.modules[module_name].definitions[name]
        local = {leaf.id for leaf in ast.walk(node) if isinstance(leaf, ast.Name) and isinstance(leaf.ctx, ast.Store)}
        local |= {leaf.arg for leaf in ast.walk(node) if isinstance(leaf, ast.arg)}
        local |= {leaf.name for leaf in ast.walk(node)
                  if isinstance(leaf, (ast.FunctionDef, ast.ClassDef, ast.ExceptHandler)) and leaf.name}
        local |= {(alias.asname or alias.name).split(".")[0] for leaf in ast.walk(node)
                  if isinstance(leaf, (ast.Import, ast.ImportFrom)) for alias in leaf.names}
        annotations = _annotation_names(node)
        missing |= {leaf.id for leaf in ast.walk(node) if isinstance(leaf, ast.Name) and id(leaf) not in annotations
                    and leaf.id not in defined and leaf.id not in local}
    return sorted(missing)
