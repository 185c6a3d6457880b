"""Generate a zoo folder's ``src/`` from this package's own modules (one source of truth, never a hand copy).

Starting from the module that defines a model, every module it imports from ``fuxictr_deres`` is collected
(transitively, names imported from a package resolved to the module that defines them), written flat into
``src/`` and its imports rewritten to relative ones inside ``src/``:

    fuxictr_deres/models/deres.py         -> src/DeRes.py          (the module defining the model class)
    fuxictr_deres/models/token_ctr.py     -> src/token_ctr.py
    fuxictr_deres/layers/attention.py     -> src/attention.py
    fuxictr_deres/residuals/deres.py      -> src/residual_deres.py
    fuxictr_deres/residuals/__init__.py   -> src/residual_rules.py (the rule registry)

Package-only code is dropped: the analytic FLOP count (methods named ``flops`` or ``*_flops`` and the import of
``fuxictr_deres.flops_rules``) belongs to this package's measurement harness, not to a FuxiCTR model. What is left
may import only fuxictr, torch, numpy and the standard library; anything else is an error naming the file and line.
Written by hand (on the standard library's ``ast``) because no tool vendors a package subset with relative imports.
"""

import ast
import importlib
import importlib.util
import inspect
import os
import sys
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

PACKAGE = "fuxictr_deres"
#: top-level imports a zoo folder may use besides the standard library
ALLOWED_IMPORTS = ("fuxictr", "torch", "numpy")
#: package modules that only the measurement harness needs; imports of them are removed with the code using them
DROPPED_MODULES = (f"{PACKAGE}.flops_rules",)


class ZooSourceError(RuntimeError):
    """A model's code cannot be exported as a self-contained zoo ``src/``."""


@dataclass
class SourceFile:
    module: str        # fuxictr_deres.layers.attention
    name: str          # file name in src/, without .py
    text: str          # the rewritten source


def _is_package(module: str) -> bool:
    return hasattr(importlib.import_module(module), "__path__")


def _package_of(module: str) -> str:
    """The package that relative imports in ``module`` start from (a package's __init__ is its own)."""
    return module if _is_package(module) else module.rpartition(".")[0]


def _absolute(node: ast.ImportFrom, module: str) -> str:
    if node.level == 0:
        return node.module or ""
    return importlib.util.resolve_name("." * node.level + (node.module or ""), _package_of(module))


def _defining_module(package: str, name: str) -> Tuple[str, bool]:
    """Where a name imported from ``package`` comes from, and whether it is a submodule: the submodule itself,
    the defining module of a class or function, or the package (for values it defines)."""
    if importlib.util.find_spec(f"{package}.{name}") is not None:
        return f"{package}.{name}", True
    obj = getattr(importlib.import_module(package), name)
    owner = getattr(obj, "__module__", None) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None
    return (owner if owner and owner.startswith(PACKAGE + ".") else package), False


def _file_name(module: str, model_modules: Dict[str, str]) -> str:
    if module in model_modules:
        return model_modules[module]
    parts = module.split(".")[1:]
    if parts[0] == "residuals":
        return "residual_rules" if len(parts) == 1 else f"residual_{parts[-1]}"
    return parts[-1]


def _dropped_names(tree: ast.Module) -> List[Tuple[int, int]]:
    """Line ranges (1-based, inclusive) of the FLOP-count methods, with their decorators."""
    spans = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef) and (item.name == "flops" or item.name.endswith("_flops")):
                    start = min([item.lineno] + [d.lineno for d in item.decorator_list])
                    spans.append((start, item.end_lineno))
    return spans


def _package_imports(tree: ast.Module, module: str) -> List[Tuple[ast.ImportFrom, List[Tuple[str, bool, str, str]]]]:
    """Each ``from fuxictr_deres... import`` of the module with, per name, (defining module, whether the name is
    that module itself, name, alias)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    raise ZooSourceError(f"{module} line {node.lineno}: `import {alias.name}`: write it as "
                                         f"`from ... import name` so the zoo copy can rewrite it")
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module)
            if target.split(".")[0] != PACKAGE:
                continue
            names = []
            for alias in node.names:
                if alias.name == "*":
                    raise ZooSourceError(f"{module} line {node.lineno}: `import *` cannot be exported")
                owner, is_module = _defining_module(target, alias.name) if _is_package(target) else (target, False)
                names.append((owner, is_module, alias.name, alias.asname or alias.name))
            found.append((node, names))
    return found


def _third_party_check(tree: ast.Module, where: str) -> None:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            tops = [alias.name.split(".")[0] for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            tops = [(node.module or "").split(".")[0]]
        else:
            continue
        for top in tops:
            if top not in ALLOWED_IMPORTS and top not in sys.stdlib_module_names:
                raise ZooSourceError(f"{where} line {node.lineno}: imports {top!r}; a zoo folder may import only "
                                     f"{', '.join(ALLOWED_IMPORTS)} and the standard library")


def _rewrite(module: str, files: Dict[str, str], header: str) -> str:
    path = inspect.getsourcefile(importlib.import_module(module))
    with open(path, "r", encoding="utf-8") as fd:
        source = fd.read()
    tree = ast.parse(source)
    lines = source.splitlines()
    replace: Dict[int, Tuple[int, List[str]]] = {}   # first line -> (last line, new lines)
    for start, end in _dropped_names(tree):
        replace[start] = (end, [])
    dropped_aliases = set()
    for node, names in _package_imports(tree, module):
        indent = lines[node.lineno - 1][:len(lines[node.lineno - 1]) - len(lines[node.lineno - 1].lstrip())]
        new: List[str] = []
        by_file: Dict[str, List[str]] = {}
        for owner, is_module, name, alias in names:
            if owner in DROPPED_MODULES:
                dropped_aliases.add(alias)
                continue
            if is_module:
                new.append(f"{indent}from . import {files[owner]}" + (f" as {alias}" if alias != files[owner] else ""))
                continue
            by_file.setdefault(files[owner], []).append(name if alias == name else f"{name} as {alias}")
        for name, imported in by_file.items():
            new.append(f"{indent}from .{name} import {', '.join(imported)}")
        replace[node.lineno] = (node.end_lineno, new)
    out, skip_to = [], 0
    for number, line in enumerate(lines, start=1):
        if number <= skip_to:
            continue
        if number in replace:
            skip_to, new = replace[number]
            out.extend(new)
            # a dropped method leaves its blank separator line; drop one to keep the spacing
            if not new and out and not out[-1].strip() and skip_to < len(lines) and not lines[skip_to].strip():
                out.pop()
            continue
        out.append(line)
    text = header + "\n".join(out).rstrip("\n") + "\n"
    result = ast.parse(text)
    used = {n.id for n in ast.walk(result) if isinstance(n, ast.Name)}
    left = sorted(used & dropped_aliases)
    if left:
        raise ZooSourceError(f"{path}: {left} still used outside a FLOP-count method; the zoo copy drops "
                             f"{', '.join(DROPPED_MODULES)}: move that use into a `flops` method")
    _third_party_check(result, path)
    return text


def collect_modules(entry: str) -> List[str]:
    """``entry`` and every package module it needs, in discovery order."""
    order, todo = [], [entry]
    while todo:
        module = todo.pop(0)
        if module in order or module in DROPPED_MODULES:
            continue
        order.append(module)
        path = inspect.getsourcefile(importlib.import_module(module))
        with open(path, "r", encoding="utf-8") as fd:
            tree = ast.parse(fd.read())
        for _, names in _package_imports(tree, module):
            todo.extend(owner for owner, _, _, _ in names)
    return order


def generate_src(model_classes: Sequence[type], header: str) -> List[SourceFile]:
    """The files of ``src/`` for ``model_classes`` (the first is the folder's model): every module they need,
    rewritten, plus an ``__init__.py`` exporting the classes."""
    model_modules = {}
    for cls in model_classes:
        model_modules.setdefault(cls.__module__, model_classes[0].__name__ if cls is model_classes[0]
                                 else cls.__module__.rpartition(".")[2])
    modules: List[str] = []
    for cls in model_classes:
        modules += [m for m in collect_modules(cls.__module__) if m not in modules]
    files = {m: _file_name(m, model_modules) for m in modules}
    seen: Dict[str, str] = {}
    for module, name in files.items():
        if name.lower() in seen or name == "__init__":
            raise ZooSourceError(f"{module} and {seen.get(name.lower(), '__init__')} would both be src/{name}.py")
        seen[name.lower()] = module
    out = []
    for module in modules:
        rel = os.path.relpath(inspect.getsourcefile(importlib.import_module(module)),
                              os.path.dirname(os.path.dirname(inspect.getsourcefile(importlib.import_module(PACKAGE)))))
        out.append(SourceFile(module, files[module], _rewrite(module, files, header.format(source=rel))))
    init_lines = [f"from .{files[cls.__module__]} import {cls.__name__}" for cls in model_classes]
    out.append(SourceFile("", "__init__", header.format(source="the model classes") + "\n".join(init_lines) + "\n"))
    return out
