"""The restricted evaluator: every script and expression the engine runs goes through it.

SpiffWorkflow would ``eval``/``exec`` BPMN scripts and conditions as plain Python. Here a
source is parsed into an AST (JUEL ``${...}`` text is first translated by
:mod:`engine.juel`), checked against an allow-list of node types, names and attributes,
rewritten so that operations whose result could be huge go through size guards, compiled
once (an LRU cache keyed by the source text) and run with a minimal ``__builtins__`` that
holds only the allow-listed helpers, under a CPU time limit.

How the pieces hold together:

* **Static check** (:class:`_Checker`): no imports, classes, ``global``, ``with``, async,
  ``yield``; no name starting with ``__``; no attribute starting with ``_``; none of the
  attributes that reach frames/code/globals, read attributes by name (``format``) or read
  the real clock (``now``, ``today`` ...); no reference to ``eval``, ``getattr``, ``type``
  and the other dangerous built-ins (they are not in the builtins either, the refusal just
  says so at deploy time). Only allow-listed exceptions may be caught or raised.
* **Size guards** (:class:`_Limits`): ``+ * ** << %`` (and their augmented forms), the
  string padding/joining/replacing methods, ``list.extend``, ``range``, ``int``, ``sum``,
  ``pow``, ``round`` and f-string format specs refuse results beyond ``max_size``
  items/characters or ~10,000 digits *before* the single C-level call that would build them
  (such a call cannot be interrupted).
* **Time limit** (:class:`_Watch`): a ``sys.settrace`` function of the calling thread checks
  the thread's CPU time on line and call events of every Python frame, including lambdas,
  comprehensions and functions the script defines. Sources without loops, comprehensions,
  lambdas or functions run untraced: they have no Python-level step a trace function could
  stop between, and skipping the trace keeps a cached condition under a microsecond.
* **Uncatchable stops**: a timeout or a run-time refusal is raised as :class:`_Stop`, a
  ``BaseException`` that no ``except`` a script may write catches. A trace function that
  raises is uninstalled by CPython, and so is one that hits the recursion limit, so every
  ``except`` body and ``finally`` body a script contains starts with a call that re-raises
  a stop in flight and stops the script if the trace function is gone.
* **Nothing half-written**: :meth:`Sandbox.execute` runs on a deep copy of the variables and
  only replaces the caller's dict when the script finished without error.

Known limits: memory is not metered (only the size of single operations is); one C-level
call over data within the size limits can still take long (sorting 100,000 lists of
100,000 items) because the time limit is only checked between Python-level steps; objects
the engine passes in ``extra`` are reachable through their public attributes, so pass
narrow facades.
"""

from __future__ import annotations

import ast
import builtins as builtins_module
import copy
import functools
import math
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as time_of_day
from decimal import Decimal
from types import CodeType, FrameType, MappingProxyType, ModuleType, TracebackType
from typing import Any, Final, Literal, NoReturn

from engine import juel
from engine.errors import EvaluationTimeout, ExpressionError, SandboxViolation

__all__ = [
    "DEFAULT_HELPERS",
    "Sandbox",
    "add_days",
    "days_between",
    "is_expression_language",
    "parse_date",
    "parse_datetime",
]

#: The file name compiled code carries; tracebacks are searched for it to find the line.
_FILENAME: Final = "<script>"
#: Integers are kept below this many decimal digits (``**``, ``*``, ``<<``, ``int()``).
MAX_DIGITS: Final = 10_000
_MAX_INT_BITS: Final = int(MAX_DIGITS * math.log2(10)) + 1
#: Any number inside a constant f-string format spec (width, precision) is at most this.
_MAX_FORMAT_NUMBER: Final = 10_000
#: Longer sources are refused before parsing: no legitimate BPMN script is this long.
_MAX_SOURCE: Final = 200_000
_CACHE_SIZE: Final = 4096
_DEFAULT_MAX_SIZE: Final = 100_000

#: Names refused wherever they appear. None of them is in the builtins anyway; refusing
#: them statically reports the mistake at deploy time instead of as a NameError later.
#: Names that are also ordinary form-field names (type, id, input, object, property ...)
#: are not refused: they are plain variables here, and unbound they are unknown names.
_DENIED_NAMES: Final = frozenset(
    {
        "open", "eval", "exec", "compile", "getattr", "setattr", "delattr", "hasattr",
        "globals", "locals", "vars", "dir", "super", "breakpoint", "memoryview",
        "classmethod", "staticmethod", "exit", "quit", "aiter", "anext", "bytearray",
        "reload", "BaseException", "SystemExit", "KeyboardInterrupt", "GeneratorExit",
        "__import__", "__builtins__",
    }
)  # fmt: skip

#: Objects never handed to code as helpers, whatever name they are given: each reaches
#: classes, frames, attributes by name or the outside world.
_DANGEROUS_VALUES: Final = (
    builtins_module.type,
    builtins_module.object,
    builtins_module.getattr,
    builtins_module.setattr,
    builtins_module.delattr,
    builtins_module.hasattr,
    builtins_module.eval,
    builtins_module.exec,
    builtins_module.compile,
    builtins_module.open,
    builtins_module.__import__,
    builtins_module.globals,
    builtins_module.locals,
    builtins_module.vars,
    builtins_module.dir,
    builtins_module.super,
    builtins_module.memoryview,
    builtins_module.breakpoint,
    builtins_module.input,
    builtins_module.print,
    builtins_module.help,
    builtins_module.classmethod,
    builtins_module.staticmethod,
    builtins_module.property,
    builtins_module.iter,
    builtins_module.id,
)

#: Exceptions a script may catch and raise. All derive from Exception, so none of them
#: catches a _Stop.
_EXCEPTIONS: Final[Mapping[str, type[Exception]]] = MappingProxyType(
    {
        "Exception": Exception,
        "ValueError": ValueError,
        "KeyError": KeyError,
        "TypeError": TypeError,
        "ZeroDivisionError": ZeroDivisionError,
        "IndexError": IndexError,
        "ArithmeticError": ArithmeticError,
        "LookupError": LookupError,
        "AttributeError": AttributeError,
        "OverflowError": OverflowError,
        "AssertionError": AssertionError,
    }
)

_JUEL_NAMES: Final = frozenset(juel.RUNTIME)


class _Stop(BaseException):
    """Stops user code with ``error``.

    A ``BaseException`` so that no ``except`` clause a script may write catches it: the
    allowed exception names all derive from :class:`Exception` and bare ``except:`` is
    refused.
    """

    def __init__(self, error: ExpressionError) -> None:
        super().__init__(error.message)
        self.error = error


def _refuse(message: str) -> NoReturn:
    raise _Stop(SandboxViolation(message))


# --------------------------------------------------------------------------------------
# Static check
# --------------------------------------------------------------------------------------

_ALLOWED_NODES: Final = frozenset(
    {
        # expressions
        ast.Expression, ast.Module, ast.Expr, ast.Constant, ast.Name, ast.Load, ast.Store,
        ast.Del, ast.Attribute, ast.Subscript, ast.Slice, ast.Starred, ast.BinOp, ast.UnaryOp,
        ast.BoolOp, ast.Compare, ast.IfExp, ast.JoinedStr, ast.FormattedValue, ast.List,
        ast.Tuple, ast.Set, ast.Dict, ast.ListComp, ast.SetComp, ast.DictComp,
        ast.GeneratorExp, ast.comprehension, ast.Call, ast.keyword, ast.Lambda,
        ast.arguments, ast.arg, ast.NamedExpr,
        # operators
        ast.Add, ast.Sub, ast.Mult, ast.MatMult, ast.Div, ast.Mod, ast.Pow, ast.LShift,
        ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd, ast.FloorDiv, ast.And, ast.Or,
        ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE, ast.Is, ast.IsNot, ast.In,
        ast.NotIn, ast.Invert, ast.Not, ast.UAdd, ast.USub,
        # statements (scripts)
        ast.Assign, ast.AugAssign, ast.AnnAssign, ast.If, ast.For, ast.While, ast.Break,
        ast.Continue, ast.Pass, ast.Delete, ast.FunctionDef, ast.Return, ast.Try,
        ast.ExceptHandler, ast.Raise, ast.Assert,
    }
)  # fmt: skip

_REFUSED_NODES: Final[Mapping[type[ast.AST], str]] = MappingProxyType(
    {
        ast.Import: "import statements are not allowed",
        ast.ImportFrom: "import statements are not allowed",
        ast.ClassDef: "class definitions are not allowed",
        ast.Global: "global statements are not allowed",
        ast.Nonlocal: "nonlocal statements are not allowed",
        ast.With: "with statements are not allowed",
        ast.AsyncWith: "async code is not allowed",
        ast.AsyncFor: "async code is not allowed",
        ast.AsyncFunctionDef: "async code is not allowed",
        ast.Await: "async code is not allowed",
        ast.Yield: "yield is not allowed (scripts cannot define generators)",
        ast.YieldFrom: "yield is not allowed (scripts cannot define generators)",
        ast.Match: "match statements are not allowed",
        ast.TryStar: "except* is not allowed",
    }
)


class _Checker(ast.NodeVisitor):
    """Walks a parsed source and raises :class:`SandboxViolation` on the first refusal."""

    def __init__(self, *, source: str, script: bool, internal: frozenset[str]) -> None:
        self.source = source
        self.script = script
        self.internal = internal
        self.handler_names: set[str] = set()

    def check(self, tree: ast.AST) -> None:
        # `raise err` is allowed when `err` was bound by some `except ... as err`.
        self.handler_names = {n.name for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler) and n.name}
        self.visit(tree)

    def refuse(self, node: ast.AST, reason: str) -> NoReturn:
        line = getattr(node, "lineno", None)
        message = f"{reason} (line {line})" if self.script and line else reason
        raise SandboxViolation(message, source=self.source, line=line)

    def generic_visit(self, node: ast.AST) -> None:
        kind = type(node)
        if kind not in _ALLOWED_NODES:
            self.refuse(node, _REFUSED_NODES.get(kind, f"{kind.__name__} is not allowed"))
        super().generic_visit(node)

    def check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("__") and name not in self.internal:
            self.refuse(node, f"name '{name}' is not allowed: names starting with '__' are reserved")
        if name in _DENIED_NAMES:
            self.refuse(node, f"name '{name}' is not allowed")

    def visit_Name(self, node: ast.Name) -> None:
        self.check_name(node, node.id)
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # Children first, so that in a chain like ().__class__.__base__ the refusal names
        # the first offending attribute in reading order.
        self.generic_visit(node)
        refusal = juel.attribute_refusal(node.attr)
        if refusal:
            self.refuse(node, refusal)
        if not isinstance(node.ctx, ast.Load):
            # Data lives in dicts and lists; attributes belong to engine objects.
            self.refuse(node, f"assigning or deleting attribute '{node.attr}' is not allowed")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if node.decorator_list:
            self.refuse(node.decorator_list[0], "decorators are not allowed")
        self.check_name(node, node.name)
        self.generic_visit(node)

    def visit_arg(self, node: ast.arg) -> None:
        self.check_name(node, node.arg)
        self.generic_visit(node)

    def visit_keyword(self, node: ast.keyword) -> None:
        if node.arg is not None:
            self.check_name(node, node.arg)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            self.refuse(node.iter, "async code is not allowed")
        self.generic_visit(node)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is None:
            self.refuse(node, "bare 'except:' is not allowed; name the exception, e.g. 'except Exception:'")
        caught = node.type.elts if isinstance(node.type, ast.Tuple) else [node.type]
        for item in caught:
            if not (isinstance(item, ast.Name) and item.id in _EXCEPTIONS):
                self.refuse(item, f"only these exceptions can be caught: {', '.join(_EXCEPTIONS)}")
        if node.name:
            self.check_name(node, node.name)
        self.generic_visit(node)

    def visit_Raise(self, node: ast.Raise) -> None:
        if node.cause is not None and not (isinstance(node.cause, ast.Constant) and node.cause.value is None):
            self.refuse(node, "'raise ... from ...' is not allowed")
        exc = node.exc
        target = exc.func if isinstance(exc, ast.Call) else exc
        allowed = (
            exc is None
            or (isinstance(target, ast.Name) and target.id in _EXCEPTIONS)
            or (isinstance(exc, ast.Name) and exc.id in self.handler_names)
        )
        if not allowed:
            self.refuse(node, f"only these exceptions can be raised: {', '.join(_EXCEPTIONS)}")
        self.generic_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> None:
        spec = node.format_spec
        if spec is not None:
            parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
            if not all(isinstance(p, ast.Constant) and isinstance(p.value, str) for p in parts):
                self.refuse(node, "f-string format specs must be constant")
            text = "".join(str(p.value) for p in parts if isinstance(p, ast.Constant))
            for number in re.findall(r"\d+", text):
                if len(number) > 6 or int(number) > _MAX_FORMAT_NUMBER:
                    self.refuse(node, f"f-string format width {number} is too large (limit {_MAX_FORMAT_NUMBER})")
        self.generic_visit(node)


# --------------------------------------------------------------------------------------
# Rewriting: route size-sensitive operations through the run-time guards
# --------------------------------------------------------------------------------------

_BINOP_GUARDS: Final[Mapping[type[ast.operator], str]] = MappingProxyType(
    {
        ast.Add: "__sb_add",
        ast.Mult: "__sb_mul",
        ast.Pow: "__sb_pow",
        ast.LShift: "__sb_lshift",
        ast.Mod: "__sb_mod",
    }
)
_AUGMENTED_GUARDS: Final[Mapping[type[ast.operator], str]] = MappingProxyType(
    {
        ast.Add: "__sb_iadd",
        ast.Mult: "__sb_imul",
        ast.Pow: "__sb_pow",
        ast.LShift: "__sb_lshift",
        ast.Mod: "__sb_mod",
    }
)
#: Methods whose single C-level call can build a huge result from small arguments.
_GUARDED_METHODS: Final = frozenset(
    {"ljust", "rjust", "center", "zfill", "expandtabs", "replace", "join", "translate", "extend",
     "to_bytes", "as_integer_ratio"}
)  # fmt: skip
#: Nodes whose presence means the code can run Python-level loops or calls of its own.
_LOOPING: Final = (
    ast.For, ast.While, ast.Lambda, ast.FunctionDef,
    ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
)  # fmt: skip


class _Guard(ast.NodeTransformer):
    """Rewrites a checked tree: guarded operators, guarded methods and stop checks."""

    def __init__(self) -> None:
        self.uses_check = False
        self.temps = 0

    @staticmethod
    def call(name: str, args: list[ast.expr], like: ast.AST) -> ast.Call:
        return ast.copy_location(ast.Call(func=ast.Name(id=name, ctx=ast.Load()), args=args, keywords=[]), like)

    def temp(self) -> str:
        # '__' names cannot be written by users, and are never written back.
        self.temps += 1
        return f"__sb_t{self.temps}"

    def check_statement(self, like: ast.AST) -> ast.stmt:
        self.uses_check = True
        return ast.copy_location(ast.Expr(value=self.call("__sb_check", [], like)), like)

    @staticmethod
    def harmless_add(op: ast.operator, *operands: ast.expr) -> bool:
        """`+` with a number literal cannot concatenate (it would be a TypeError) and only
        grows an integer by a bit: `count += 1` needs no guard call."""
        return isinstance(op, ast.Add) and any(
            isinstance(o, ast.Constant) and type(o.value) in (int, float) for o in operands
        )

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None or self.harmless_add(node.op, node.left, node.right):
            return node
        return self.call(guard, [node.left, node.right], node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt | list[ast.stmt]:
        self.generic_visit(node)
        guard = _AUGMENTED_GUARDS.get(type(node.op))
        target = node.target
        if guard is None or self.harmless_add(node.op, node.value):
            return node
        if isinstance(target, ast.Name):
            value = self.call(guard, [ast.Name(id=target.id, ctx=ast.Load()), node.value], node)
            return ast.copy_location(ast.Assign(targets=[ast.Name(id=target.id, ctx=ast.Store())], value=value), node)
        if isinstance(target, ast.Subscript):
            # a[k] op= v  ->  t1 = a; t2 = k; t1[t2] = guard(t1[t2], v): a and k evaluated once.
            obj, key = self.temp(), self.temp()
            index = target.slice
            if isinstance(index, ast.Slice):
                bounds = [part or ast.Constant(value=None) for part in (index.lower, index.upper, index.step)]
                index = self.call("__sb_slice", bounds, node)
            current = ast.Subscript(
                value=ast.Name(id=obj, ctx=ast.Load()), slice=ast.Name(id=key, ctx=ast.Load()), ctx=ast.Load()
            )
            store = ast.Subscript(
                value=ast.Name(id=obj, ctx=ast.Load()),
                slice=ast.Name(id=key, ctx=ast.Load()),
                ctx=ast.Store(),
            )
            statements: list[ast.stmt] = [
                ast.Assign(targets=[ast.Name(id=obj, ctx=ast.Store())], value=target.value),
                ast.Assign(targets=[ast.Name(id=key, ctx=ast.Store())], value=index),
                ast.Assign(targets=[store], value=self.call(guard, [current, node.value], node)),
            ]
            return [ast.copy_location(s, node) for s in statements]
        return node  # attribute targets were refused by the checker

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        self.generic_visit(node)
        if isinstance(node.ctx, ast.Load) and node.attr in _GUARDED_METHODS:
            return self.call("__sb_attr", [node.value, ast.Constant(value=node.attr)], node)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.FormattedValue:
        self.generic_visit(node)
        if node.format_spec is not None:
            node.value = self.call("__sb_fmt", [node.value], node)
        return node

    def visit_While(self, node: ast.While) -> ast.While:
        self.generic_visit(node)
        # CPython 3.11 compiles `while True: pass` to a jump onto itself that emits no
        # line event, so the trace function would never see it. Loading a name is a real
        # instruction (~20 ns) that makes every iteration visible.
        tick = ast.Expr(value=ast.Name(id="__sb_tick", ctx=ast.Load()))
        node.body.insert(0, ast.copy_location(tick, node))
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.ExceptHandler:
        self.generic_visit(node)
        node.body.insert(0, self.check_statement(node))
        return node

    def visit_Try(self, node: ast.Try) -> ast.Try:
        self.generic_visit(node)
        if node.finalbody:
            node.finalbody.insert(0, self.check_statement(node.finalbody[0]))
        return node


# --------------------------------------------------------------------------------------
# Free names: what a source reads without binding it first (documents a script's inputs)
# --------------------------------------------------------------------------------------


def _params(args: ast.arguments) -> set[str]:
    every = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    every += [a for a in (args.vararg, args.kwarg) if a is not None]
    return {a.arg for a in every}


def _bound_in(nodes: list[ast.stmt] | list[ast.expr]) -> set[str]:
    """Names bound in a block, not looking into nested functions, lambdas or comprehensions."""
    bound: set[str] = set()
    stack: list[ast.AST] = list(nodes)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef):
            bound.add(node.name)
            continue
        if isinstance(node, ast.Lambda | ast.ListComp | ast.SetComp | ast.DictComp | ast.GeneratorExp):
            continue
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            bound.add(node.id)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
        stack.extend(ast.iter_child_nodes(node))
    return bound


class _Reads(ast.NodeVisitor):
    """Collects names read before (or without) being bound by the source itself.

    Module-level statements are followed in order, so ``counter = counter + 1`` reports
    ``counter``. Bodies of functions run later, so there any module-level binding counts.
    """

    def __init__(self, module_bound: set[str]) -> None:
        self.free: set[str] = set()
        self.defined: set[str] = set()
        self.module_bound = module_bound
        self.scopes: list[set[str]] = []
        self.function_depth = 0

    def read(self, name: str) -> None:
        if any(name in scope for scope in self.scopes):
            return
        if name in self.defined or (self.function_depth and name in self.module_bound):
            return
        self.free.add(name)

    def bind(self, name: str) -> None:
        if not self.scopes:
            self.defined.add(name)

    def enter(self, local: set[str], body: list[ast.AST], *, function: bool) -> None:
        self.scopes.append(local)
        self.function_depth += function
        for node in body:
            self.visit(node)
        self.function_depth -= function
        self.scopes.pop()

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Store):
            self.bind(node.id)
        else:
            self.read(node.id)  # Load, and Del: `del x` needs x to exist

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self.visit(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self.visit(node.annotation)
        self.visit(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        if isinstance(node.target, ast.Name):
            self.read(node.target.id)
            self.bind(node.target.id)
        else:
            self.visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self.visit(node.target)

    def visit_For(self, node: ast.For) -> None:
        self.visit(node.iter)
        self.visit(node.target)
        for statement in [*node.body, *node.orelse]:
            self.visit(statement)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self.bind(node.name)
        for statement in node.body:
            self.visit(statement)

    def _defaults(self, args: ast.arguments) -> None:
        for default in [*args.defaults, *args.kw_defaults]:
            if default is not None:
                self.visit(default)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._defaults(node.args)
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]:
            if arg.annotation is not None:
                self.visit(arg.annotation)
        if node.returns is not None:
            self.visit(node.returns)
        self.bind(node.name)
        local = _params(node.args) | _bound_in(node.body)
        self.enter(local, list(node.body), function=True)

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._defaults(node.args)
        self.enter(_params(node.args), [node.body], function=True)

    def _comprehension(self, generators: list[ast.comprehension], elements: list[ast.expr]) -> None:
        self.visit(generators[0].iter)
        local = _bound_in([g.target for g in generators])
        body: list[ast.AST] = []
        for i, generator in enumerate(generators):
            if i:
                body.append(generator.iter)
            body.extend(generator.ifs)
        self.enter(local, [*body, *elements], function=False)

    def visit_ListComp(self, node: ast.ListComp) -> None:
        self._comprehension(node.generators, [node.elt])

    def visit_SetComp(self, node: ast.SetComp) -> None:
        self._comprehension(node.generators, [node.elt])

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
        self._comprehension(node.generators, [node.elt])

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node.generators, [node.key, node.value])


def _free_names(tree: ast.Module | ast.Expression) -> frozenset[str]:
    module_bound = _bound_in(tree.body) if isinstance(tree, ast.Module) else set()
    reads = _Reads(module_bound)
    reads.visit(tree)
    return frozenset(name for name in reads.free if not name.startswith("__"))


# --------------------------------------------------------------------------------------
# Compilation (cached)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    source: str
    code: CodeType
    script: bool  # multi-statement Python: errors name the line
    juel: bool
    needs_trace: bool
    uses_check: bool
    reads: frozenset[str]


def is_expression_language(source: str) -> bool:
    """True when ``source`` is JUEL: one ``${...}``/``#{...}``, or composite text.

    Text that contains ``${`` but is valid Python (``x = "${a}"``, a comment) stays Python:
    ``$`` cannot appear in Python outside strings and comments, so real composite text
    never parses.
    """
    text = source.strip()
    if juel.is_juel(text):
        return True
    if not juel.is_composite(text):
        return False
    try:
        ast.parse(text, mode="exec")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return True
    return False


def _parse(source: str, mode: Literal["eval", "exec"]) -> ast.Module | ast.Expression | ExpressionError:
    """The Python AST of ``source``, or the error to raise (returned, so that the caller
    raises it outside an ``except`` block and no parser traceback is chained to it)."""
    text = source.strip() if mode == "eval" else textwrap.dedent(source)
    try:
        if mode == "eval":
            return ast.parse(text, _FILENAME, "eval")
        return ast.parse(text, _FILENAME, "exec")
    except SyntaxError as exc:
        line = exc.lineno or 1
        column = exc.offset
        if not column:  # Python reports 0 for an unexpected end of input
            lines = text.splitlines() or [""]
            column = len(lines[min(line, len(lines)) - 1]) + 1
        where = f"line {line}, column {column}" if mode == "exec" else f"column {column}"
        return ExpressionError(f"syntax error: {exc.msg} ({where})", source, line)
    except (ValueError, RecursionError, MemoryError) as exc:
        return ExpressionError(f"cannot parse: {type(exc).__name__}: {_describe(exc)}", source)


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _compile(source: str, mode: Literal["eval", "exec"]) -> _Compiled:
    """Parse, check, rewrite and compile ``source``; cached, failures are not."""
    if len(source) > _MAX_SOURCE:
        raise SandboxViolation(f"the source is too long ({len(source)} characters; limit {_MAX_SOURCE})", source)
    if is_expression_language(source):
        tree: ast.Module | ast.Expression = juel.to_python_ast(source.strip())
        is_juel, internal = True, _JUEL_NAMES
    else:
        parsed = _parse(source, mode)
        if isinstance(parsed, ExpressionError):
            raise parsed
        tree, is_juel, internal = parsed, False, frozenset()
    script = mode == "exec" and not is_juel
    try:
        _Checker(source=source, script=script, internal=internal).check(tree)
        reads = _free_names(tree)
        needs_trace = any(isinstance(node, _LOOPING) for node in ast.walk(tree))
        guard = _Guard()
        rewritten = ast.fix_missing_locations(guard.visit(tree))
        kind = "eval" if isinstance(rewritten, ast.Expression) else "exec"
        code = compile(rewritten, _FILENAME, kind, dont_inherit=True)
    except RecursionError:
        code = None
    if code is None:
        raise ExpressionError("the source is nested too deeply", source)
    return _Compiled(source, code, script, is_juel, needs_trace, guard.uses_check, reads)


# --------------------------------------------------------------------------------------
# Run-time guards
# --------------------------------------------------------------------------------------

_SEQUENCES: Final = (str, bytes, list, tuple)
_PRINTF_SPEC: Final = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(?P<width>\*|\d+)?(?:\.(?P<precision>\*|\d+))?")


def _check_decimal(value: Decimal) -> None:
    # Decimal('1e999999999') is cheap to hold but int() or f'{d:f}' of it is not.
    if value.is_finite() and abs(value.adjusted()) > MAX_DIGITS:
        _refuse(f"the decimal {value} has an exponent beyond {MAX_DIGITS} digits")


def _check_format_value(value: object) -> object:
    if isinstance(value, Decimal):
        _check_decimal(value)
    return value


_MethodCheck = Callable[["_Limits", Any, tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]


class _Limits:
    """Size guards bound to one sandbox's ``max_size``; their methods become ``__sb_*`` builtins."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size

    def size(self, n: int, what: str) -> None:
        if n > self.max_size:
            _refuse(f"{what} would have {n} items or characters; the limit is {self.max_size}")

    def guards(self) -> dict[str, object]:
        return {
            "__sb_add": self.add,
            "__sb_iadd": self.iadd,
            "__sb_mul": self.mul,
            "__sb_imul": self.imul,
            "__sb_pow": self.pow,
            "__sb_lshift": self.lshift,
            "__sb_mod": self.mod,
            "__sb_attr": self.attr,
            "__sb_fmt": _check_format_value,
            "__sb_slice": slice,
            "__sb_tick": None,
        }

    # -- operators
    def add(self, a: Any, b: Any) -> Any:
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
            self.size(len(a) + len(b), "the result of '+'")
        return a + b

    def iadd(self, a: Any, b: Any) -> Any:
        if isinstance(a, list) and not isinstance(b, _SEQUENCES):
            # `lst += map(f, lst)` would grow lst while iterating it, inside one C call.
            b = list(b)
        if isinstance(a, _SEQUENCES) and isinstance(b, _SEQUENCES):
            self.size(len(a) + len(b), "the result of '+='")
        a += b
        return a

    def _check_mul(self, a: Any, b: Any) -> None:
        if isinstance(a, int) and isinstance(b, int):
            if a.bit_length() + b.bit_length() > _MAX_INT_BITS:
                _refuse(f"the result of '*' would have more than {MAX_DIGITS} digits")
        elif isinstance(a, _SEQUENCES) and isinstance(b, int):
            self.size(len(a) * b, "the result of '*'")
        elif isinstance(b, _SEQUENCES) and isinstance(a, int):
            self.size(len(b) * a, "the result of '*'")

    def mul(self, a: Any, b: Any) -> Any:
        self._check_mul(a, b)
        return a * b

    def imul(self, a: Any, b: Any) -> Any:
        self._check_mul(a, b)
        a *= b
        return a

    def pow(self, base: Any, exp: Any, mod: Any = None) -> Any:
        if (
            mod is None
            and isinstance(base, int)
            and isinstance(exp, int)
            and exp > 1
            and abs(base) > 1
            and exp * math.log10(abs(base)) > MAX_DIGITS
        ):
            _refuse(f"the result of '**' would have more than {MAX_DIGITS} digits")
        return pow(base, exp) if mod is None else pow(base, exp, mod)

    def lshift(self, a: Any, b: Any) -> Any:
        if isinstance(a, int) and isinstance(b, int) and a and b > 0 and a.bit_length() + b > _MAX_INT_BITS:
            _refuse(f"the result of '<<' would have more than {MAX_DIGITS} digits")
        return a << b

    def mod(self, a: Any, b: Any) -> Any:
        if isinstance(a, str | bytes):
            text = a if isinstance(a, str) else a.decode("latin-1")
            for match in _PRINTF_SPEC.finditer(text):
                for number in match.group("width", "precision"):
                    if number == "*":
                        _refuse("'*' widths in %-formatting are not allowed")
                    if number and (len(number) > 6 or int(number) > self.max_size):
                        _refuse(f"%-format width {number} is too large; the limit is {self.max_size}")
            values = b.values() if isinstance(b, Mapping) else b if isinstance(b, tuple) else (b,)
            for value in values:
                _check_format_value(value)
        return a % b

    # -- methods
    def attr(self, obj: Any, name: str) -> Any:
        value = getattr(obj, name)
        kinds, checker = _METHOD_GUARDS[name]
        if isinstance(obj, kinds):

            def bound(*args: Any, **kwargs: Any) -> Any:
                return value(*checker(self, obj, args, kwargs), **kwargs)

            return bound
        owner = obj._target if isinstance(obj, _Guarded) else obj
        if isinstance(owner, type) and issubclass(owner, kinds):
            # str.join(sep, parts): the first argument is the object.
            def unbound(*args: Any, **kwargs: Any) -> Any:
                if args and isinstance(args[0], kinds):
                    args = (args[0], *checker(self, args[0], args[1:], kwargs))
                return value(*args, **kwargs)

            return unbound
        return value

    def check_pad(self, text: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        width = args[0] if args else kwargs.get("width")
        if isinstance(width, int):
            self.size(width, "the padded text")
        return args

    def check_expandtabs(self, text: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(tabsize, int) and tabsize > 0:
            tab = "\t" if isinstance(text, str) else b"\t"
            self.size(len(text) + text.count(tab) * tabsize, "the expanded text")
        return args

    def check_replace(self, text: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if len(args) >= 2 and isinstance(args[0], type(text)) and isinstance(args[1], type(text)):
            old, new = args[0], args[1]
            count = args[2] if len(args) > 2 else kwargs.get("count", -1)
            n = text.count(old) if old else len(text) + 1
            if isinstance(count, int) and count >= 0:
                n = min(n, count)
            self.size(len(text) + n * (len(new) - len(old)), "the replaced text")
        return args

    def check_join(self, sep: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if len(args) != 1:
            return args
        parts = list(args[0])
        total = sum(len(p) for p in parts if isinstance(p, str | bytes)) + len(sep) * max(len(parts) - 1, 0)
        self.size(total, "the joined text")
        return (parts,)

    def check_translate(self, text: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if args and isinstance(args[0], dict):
            longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
            self.size(len(text) * max(longest, 1), "the translated text")
        return args

    def check_extend(self, items: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if len(args) != 1:
            return args
        # Materialise first: `lst.extend(map(f, lst))` would otherwise never end.
        more = list(args[0])
        self.size(len(items) + len(more), "the extended list")
        return (more,)

    def check_to_bytes(self, number: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        length = args[0] if args else kwargs.get("length", 1)
        if isinstance(length, int):
            self.size(length, "the byte string")
        return args

    def check_integer_ratio(self, number: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        if isinstance(number, Decimal):
            _check_decimal(number)
        return args


_METHOD_GUARDS: Final[Mapping[str, tuple[tuple[type, ...], _MethodCheck]]] = MappingProxyType(
    {
        "ljust": ((str, bytes), _Limits.check_pad),
        "rjust": ((str, bytes), _Limits.check_pad),
        "center": ((str, bytes), _Limits.check_pad),
        "zfill": ((str, bytes), _Limits.check_pad),
        "expandtabs": ((str, bytes), _Limits.check_expandtabs),
        "replace": ((str, bytes), _Limits.check_replace),
        "join": ((str, bytes), _Limits.check_join),
        "translate": ((str,), _Limits.check_translate),
        "extend": ((list,), _Limits.check_extend),
        "to_bytes": ((int,), _Limits.check_to_bytes),
        "as_integer_ratio": ((Decimal,), _Limits.check_integer_ratio),
    }
)
assert set(_METHOD_GUARDS) == _GUARDED_METHODS


class _Guarded:
    """A built-in type or function behind a size guard, still usable like the original.

    ``isinstance(x, int)`` works through ``__instancecheck__`` and ``int.from_bytes``
    through ``__getattr__``. The wrapped object is kept in ``_target``, a name scripts
    cannot reach (attributes starting with ``_`` are refused), so the unguarded original
    never leaks.
    """

    __slots__ = ("_impl", "_limits", "_target")

    def __init__(self, target: object, impl: Callable[..., Any], limits: _Limits) -> None:
        self._target = target
        self._impl = impl
        self._limits = limits

    def _bind(self, limits: _Limits) -> _Guarded:
        return _Guarded(self._target, self._impl, limits)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._impl(self._limits, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def __instancecheck__(self, obj: object) -> bool:
        return isinstance(self._target, type) and isinstance(obj, self._target)

    def __subclasscheck__(self, cls: type) -> bool:
        return isinstance(self._target, type) and issubclass(cls, self._target)

    def __repr__(self) -> str:
        return repr(self._target)


def _int_impl(limits: _Limits, *args: Any, **kwargs: Any) -> int:
    if args and isinstance(args[0], Decimal):
        _check_decimal(args[0])
    return int(*args, **kwargs)


def _range_impl(limits: _Limits, *args: Any) -> range:
    result = range(*args)
    try:
        n = len(result)
    except OverflowError:
        n = limits.max_size + 1
    limits.size(n, "range()")
    return result


def _decimal_impl(limits: _Limits, value: object = "0") -> Decimal:
    result = Decimal(value)  # type: ignore[arg-type]  # Decimal raises its own TypeError
    _check_decimal(result)
    return result


def _sum_impl(limits: _Limits, iterable: Any, /, start: Any = 0) -> Any:
    if isinstance(start, list | tuple):
        # sum(lists, []) concatenates inside one C call: go item by item through the guard.
        total = start
        for item in iterable:
            total = limits.add(total, item)
        return total
    return sum(iterable, start)


def _pow_impl(limits: _Limits, base: Any, exp: Any, mod: Any = None) -> Any:
    return limits.pow(base, exp, mod)


def _round_impl(limits: _Limits, number: Any, ndigits: Any = None) -> Any:
    if ndigits is None:
        if isinstance(number, Decimal):
            _check_decimal(number)
        return round(number)
    return round(number, ndigits)


# Argument errors name the function by its __qualname__: say `sum()`, not `_sum_impl()`.
for _impl, _name in ((_int_impl, "int"), (_range_impl, "range"), (_decimal_impl, "Decimal"),
                     (_sum_impl, "sum"), (_pow_impl, "pow"), (_round_impl, "round")):  # fmt: skip
    _impl.__qualname__ = _impl.__name__ = _name


# --------------------------------------------------------------------------------------
# Date helpers (no clock: the engine passes now() in `extra`)
# --------------------------------------------------------------------------------------


def parse_date(value: str | date) -> date:
    """An ISO 8601 date (``2024-05-01``); a datetime text or object gives its date part."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not isinstance(value, str):
        raise TypeError(f"parse_date() needs a text, got {type(value).__name__}")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.strip()).date()
    except ValueError:
        raise ValueError(f"not an ISO 8601 date (YYYY-MM-DD): {value[:40]!r}") from None


def parse_datetime(value: str | date) -> datetime:
    """An ISO 8601 date-time (``2024-05-01T10:30:00+05:00``, ``Z`` allowed); a date gives midnight."""
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time_of_day())
    if not isinstance(value, str):
        raise TypeError(f"parse_datetime() needs a text, got {type(value).__name__}")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not an ISO 8601 date-time: {value[:40]!r}") from None


def add_days(value: str | date, days: int | float) -> date:
    """``value`` (a date, datetime or ISO text) plus ``days`` days; keeps the type of ``value``."""
    if isinstance(value, str):
        text = value.strip()
        value = parse_date(text) if len(text) <= 10 else parse_datetime(text)
    if not isinstance(value, date):
        raise TypeError(f"add_days() needs a date, got {type(value).__name__}")
    return value + timedelta(days=days)


def days_between(start: str | date, end: str | date) -> int:
    """Calendar days from ``start`` to ``end`` (negative when ``end`` is earlier).

    Datetimes count by their date in their own time zone.
    """
    return (parse_date(end) - parse_date(start)).days


_DEFAULT_LIMITS: Final = _Limits(_DEFAULT_MAX_SIZE)

#: The allow-listed helpers every script sees as its only built-ins. ``int``, ``range``,
#: ``Decimal``, ``sum``, ``pow`` and ``round`` are size-guarded wrappers (``isinstance``
#: still works with them). ``isinstance`` is the real one: it only answers True/False and
#: scripts cannot define classes, so no user ``__instancecheck__`` can run. ``date``,
#: ``datetime`` and ``timedelta`` are the real classes; their clock-reading methods are
#: refused by attribute name (``now``, ``today`` ...). To add helpers, pass
#: ``{**DEFAULT_HELPERS, "name": value}`` to :class:`Sandbox`.
DEFAULT_HELPERS: Final[Mapping[str, object]] = MappingProxyType(
    {
        "len": len,
        "min": min,
        "max": max,
        "sum": _Guarded(sum, _sum_impl, _DEFAULT_LIMITS),
        "round": _Guarded(round, _round_impl, _DEFAULT_LIMITS),
        "sorted": sorted,
        "abs": abs,
        "any": any,
        "all": all,
        "bool": bool,
        "int": _Guarded(int, _int_impl, _DEFAULT_LIMITS),
        "float": float,
        "str": str,
        "list": list,
        "dict": dict,
        "set": set,
        "frozenset": frozenset,
        "tuple": tuple,
        "enumerate": enumerate,
        "zip": zip,
        "reversed": reversed,
        "range": _Guarded(range, _range_impl, _DEFAULT_LIMITS),
        "map": map,
        "filter": filter,
        "isinstance": isinstance,
        "divmod": divmod,
        "pow": _Guarded(pow, _pow_impl, _DEFAULT_LIMITS),
        "chr": chr,
        "ord": ord,
        "repr": repr,
        "Decimal": _Guarded(Decimal, _decimal_impl, _DEFAULT_LIMITS),
        "date": date,
        "datetime": datetime,
        "timedelta": timedelta,
        "parse_date": parse_date,
        "parse_datetime": parse_datetime,
        "add_days": add_days,
        "days_between": days_between,
        **_EXCEPTIONS,
    }
)


# --------------------------------------------------------------------------------------
# Time limit
# --------------------------------------------------------------------------------------


class _Watch:
    """The CPU-time deadline of one run, enforced by a trace function of its thread."""

    __slots__ = ("deadline", "limit", "trace")

    def __init__(self, limit: float) -> None:
        thread_time, perf_counter = time.thread_time, time.perf_counter
        self.limit = limit
        deadline = self.deadline = thread_time() + limit
        # thread_time() is a system call (~0.5 us); perf_counter() is not. A thread cannot
        # use more CPU time than wall time passes, so the CPU clock only needs reading once
        # the wall clock has advanced by the CPU time that was left.
        next_look = perf_counter() + limit

        def trace(frame: FrameType, event: str, arg: object) -> Any:
            nonlocal next_look
            if event == "call" and frame.f_code.co_filename != _FILENAME:
                # Not the script's code: helpers, engine callbacks, and whatever the interpreter
                # runs in between (garbage-collector callbacks of other libraries). Never raise
                # there: the stop would land in foreign code. Helpers have no unbounded loops of
                # their own (what they iterate is user code, traced in its own frames), so the
                # next script line is never far away.
                return None
            if (event == "line" or event == "call") and perf_counter() >= next_look:
                left = deadline - thread_time()
                if left <= 0:
                    raise _Stop(EvaluationTimeout(f"stopped after {limit:g} s of CPU time (the time limit)"))
                next_look = perf_counter() + left
            return trace

        self.trace = trace

    def timeout(self) -> _Stop:
        return _Stop(EvaluationTimeout(f"stopped after {self.limit:g} s of CPU time (the time limit)"))


def _stop_check(watch: _Watch | None) -> Callable[[], None]:
    """The ``__sb_check()`` that starts every ``except`` and ``finally`` body of a script."""

    def check() -> None:
        in_flight = sys.exc_info()[1]
        if isinstance(in_flight, _Stop):
            raise in_flight  # a finally body must not run on after a stop
        if watch is not None:
            if sys.gettrace() is not watch.trace:
                # CPython uninstalls a trace function that raised, e.g. RecursionError
                # when called at the recursion limit: nothing would stop a loop any more.
                raise _Stop(ExpressionError("RecursionError: maximum recursion depth exceeded; the script was stopped"))
            if time.thread_time() >= watch.deadline:
                raise watch.timeout()

    return check


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------

_PLAIN: Final = frozenset({type(None), bool, int, float, str, bytes, Decimal, date, datetime, timedelta})
_CONTAINERS: Final = (list, tuple, set, frozenset, dict)


def _is_code(value: object) -> bool:
    """Functions, classes, helpers, generators and modules: things that run or import code."""
    return callable(value) or isinstance(value, Iterator | ModuleType)


def _kind(value: object) -> str:
    if isinstance(value, type):
        return "a class"
    if isinstance(value, Iterator):
        return "an iterator"
    if isinstance(value, ModuleType):
        return "a module"
    return "a function"


def _unstorable(value: object) -> tuple[str, str] | None:
    """Where (``[0]['f']``, '' for the value itself) and what cannot be stored in ``value``:
    code (see :func:`_is_code`) or a container that contains itself. Iterative, so deep
    data does not hit the recursion limit; paths are only built along the way down."""
    stack: list[tuple[object, str, bool]] = [(value, "", False)]
    on_path: set[int] = set()
    done: set[int] = set()
    while stack:
        item, path, leaving = stack.pop()
        if leaving:
            on_path.discard(id(item))
            done.add(id(item))
            continue
        if type(item) in _PLAIN:
            continue
        if _is_code(item):
            return path, _kind(item)
        if not isinstance(item, _CONTAINERS) or id(item) in done:
            continue
        if id(item) in on_path:
            return path, "a reference to a container that contains it"
        on_path.add(id(item))
        stack.append((item, path, True))
        if isinstance(item, dict):
            stack.extend((v, f"{path}[{k!r}]", False) for k, v in item.items())
            stack.extend((k, f"{path} (a key)", False) for k in item)
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{path}[{i}]", False) for i, v in enumerate(item))
        else:
            stack.extend((v, f"{path} (an element)", False) for v in item)
    return None


def _user_line(tb: TracebackType | None) -> int | None:
    """The line of the innermost frame of user code in a traceback."""
    line = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _FILENAME:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a str() that fails must not hide the original error
        text = ""
    return text if len(text) <= 300 else text[:300] + "..."


def _located(error: ExpressionError, compiled: _Compiled, tb: TracebackType | None) -> ExpressionError:
    """A fresh error of the same class carrying the source and the user's line."""
    line = _user_line(tb) or error.line
    message = f"{error.message} (line {line})" if compiled.script and line else error.message
    return type(error)(message, source=compiled.source, line=line)


def _explain(exc: Exception, compiled: _Compiled) -> ExpressionError:
    if isinstance(exc, ExpressionError):
        return _located(exc, compiled, exc.__traceback__)
    if isinstance(exc, NameError) and not isinstance(exc, UnboundLocalError) and exc.name:
        message = f"unknown variable '{exc.name}'" if compiled.juel else f"name '{exc.name}' is not defined"
    elif compiled.juel and isinstance(exc, AttributeError) and exc.name:
        # In JUEL an attribute is only ever looked up to call it: base.method(...).
        owner = type(getattr(exc, "obj", None)).__name__
        message = f"method '{exc.name}' not found on a {owner} value"
    elif isinstance(exc, RecursionError):
        message = "RecursionError: maximum recursion depth exceeded (a function calls itself too deeply)"
    else:
        message = f"{type(exc).__name__}: {_describe(exc)}"
    return _located(ExpressionError(message), compiled, exc.__traceback__)


# --------------------------------------------------------------------------------------
# The sandbox
# --------------------------------------------------------------------------------------


class Sandbox:
    """Checks and runs scripts and expressions (Python subset or JUEL) with limits.

    ``time_limit`` is the CPU time (seconds, of the calling thread) one evaluation may use;
    ``helpers`` replaces :data:`DEFAULT_HELPERS` as the built-ins code sees; ``max_size``
    bounds the items/characters of any single value an operation builds. An instance is
    immutable and may be shared by threads.
    """

    def __init__(
        self,
        *,
        time_limit: float = 1.0,
        helpers: Mapping[str, object] | None = None,
        max_size: int = _DEFAULT_MAX_SIZE,
    ) -> None:
        if not time_limit > 0:
            raise ValueError("time_limit must be positive")
        if max_size < 1:
            raise ValueError("max_size must be positive")
        self.time_limit = time_limit
        self.max_size = max_size
        chosen = DEFAULT_HELPERS if helpers is None else helpers
        limits = _Limits(max_size)
        builtins: dict[str, object] = {}
        for name, value in chosen.items():
            if not name.isidentifier() or name.startswith("__") or name in _DENIED_NAMES:
                raise ValueError(f"helper name {name!r} is not allowed")
            if any(value is dangerous for dangerous in _DANGEROUS_VALUES):
                raise ValueError(f"helper {name!r} would expose {value!r}")
            builtins[name] = value._bind(limits) if isinstance(value, _Guarded) else value
        builtins.update(limits.guards())
        builtins.update(juel.RUNTIME)
        # Replaces the real builtins: code can reach nothing that is not in this dict.
        self._builtins: Mapping[str, object] = builtins
        self._helper_names = frozenset(chosen)

    def check_expression(self, source: str) -> None:
        """Statically check an expression (Python or JUEL) without running it.

        Raises :class:`ExpressionError` for syntax errors (with the position) and
        :class:`SandboxViolation` naming the refused construct.
        """
        _compile(source.strip(), "eval")

    def check_script(self, source: str) -> None:
        """Statically check a multi-statement script; raises like :meth:`check_expression`."""
        _compile(source, "exec")

    def evaluate(self, source: str, variables: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Any:
        """Evaluate an expression and return its value.

        Names resolve to ``variables``, then ``extra`` (context objects such as
        ``execution`` or ``now``), then the helpers. ``variables`` is not copied deeply:
        an expression that mutates a list in it mutates the caller's list, so conditions
        should not do that. A result that is a function, class or iterator (which could
        run code later, outside the limits) is refused.
        """
        compiled = _compile(source.strip(), "eval")
        namespace = {**extra, **variables} if extra else dict(variables)
        namespace["__builtins__"] = self._builtins
        value = self._run(compiled, namespace)
        if type(value) in _PLAIN:
            return value
        found = _unstorable(value)
        if found is not None:
            path, what = found
            at = f" at {path}" if path else ""
            raise ExpressionError(f"the expression returned {what}{at}, not a value", source=compiled.source)
        return value

    def execute(self, source: str, variables: dict[str, Any], extra: Mapping[str, Any] | None = None) -> None:
        """Run a script (like a BPMN script task) against ``variables``.

        Top-level names the script assigns become variables and names it deletes are
        removed. Functions, lambdas, classes, modules, iterators and ``extra`` objects are
        not written back (a variable the script rebinds to one keeps its old value); code
        nested inside a container, or a container that contains itself, is an error. The
        script runs on a deep copy: on any error the caller's dict, including nested
        values, is untouched.
        """
        compiled = _compile(source, "exec")
        try:
            work: dict[str, Any] = copy.deepcopy(variables)
        except Exception as exc:
            raise ExpressionError(f"the variables cannot be copied: {type(exc).__name__}", source) from None
        namespace = {**extra, **work} if extra else work
        namespace["__builtins__"] = self._builtins
        self._run(compiled, namespace)
        result = self._written_back(namespace, variables, extra, compiled)
        variables.clear()
        variables.update(result)

    def free_names(self, source: str) -> set[str]:
        """Variables an expression or script reads and does not define itself.

        Helpers are excluded; ``extra`` names (``execution``, ``now``) are not known here
        and are included. Raises like :meth:`check_script` for invalid sources.
        """
        try:
            compiled = _compile(source.strip(), "eval")
        except SandboxViolation:
            raise
        except ExpressionError:
            compiled = _compile(source, "exec")
        return {name for name in compiled.reads if name not in self._helper_names}

    # -- internals
    def _run(self, compiled: _Compiled, namespace: dict[str, Any]) -> Any:
        watch = _Watch(self.time_limit) if compiled.needs_trace else None
        if compiled.uses_check:
            namespace["__sb_check"] = _stop_check(watch)
        error: ExpressionError
        try:
            if watch is None:
                return eval(compiled.code, namespace)  # noqa: S307  checked, rewritten, minimal builtins
            previous = sys.gettrace()
            sys.settrace(watch.trace)
            try:
                return eval(compiled.code, namespace)  # noqa: S307  checked, rewritten, minimal builtins
            finally:
                sys.settrace(previous)
        except _Stop as stop:
            error = _located(stop.error, compiled, stop.__traceback__)
        except Exception as exc:
            error = _explain(exc, compiled)
        # Raised outside the except blocks: no chained traceback of the user code or of
        # our own frames travels with the error.
        raise error

    @staticmethod
    def _written_back(
        namespace: dict[str, Any],
        original: dict[str, Any],
        extra: Mapping[str, Any] | None,
        compiled: _Compiled,
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        # Engine objects passed in `extra` stay out of the process data even when a script
        # copies them to a new name (ctx = execution); plain data from extra may be copied.
        extra_objects = {id(v) for v in extra.values() if type(v) not in _PLAIN} if extra else set()
        for name, value in namespace.items():
            if name.startswith("__"):
                # Our own names (__builtins__, __sb_*); users cannot write '__' names.
                if name in original:
                    result[name] = original[name]
                continue
            if extra is not None and name not in original and name in extra and value is extra[name]:
                continue
            if _is_code(value) or id(value) in extra_objects:
                if name in original:
                    result[name] = original[name]
                continue
            found = _unstorable(value)
            if found is not None:
                path, what = found
                raise ExpressionError(
                    f"variable '{name}' holds {what} at {name}{path}, which cannot be stored",
                    source=compiled.source,
                )
            result[name] = value
        return result
