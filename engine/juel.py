"""The JUEL subset that Camunda Modeler users write, translated into a Python AST.

BPMN files made with Camunda Modeler carry JUEL (Java Unified Expression Language, EL 2.2)
in conditions, assignees, due dates and listeners: ``${score <= 5}``, ``#{!approved}``,
``${execution.setVariable('foo', 'bar')}``, or composite text such as ``"Dear ${name}"``.
This module parses that text and builds an :class:`ast.Expression` (never Python source
text) that :mod:`engine.sandbox` checks and compiles like any other expression. JUEL
semantics that differ from Python are implemented by the runtime helpers below
(:func:`juel_prop`, :func:`juel_add`, ...); the translated AST calls them under names
listed in :data:`RUNTIME`, all starting with ``__``, a prefix the sandbox refuses in
user-written Python, so only translated JUEL can reach them and a process variable can
never shadow them.

Supported: integer, float, string (``'...'``/``"..."`` with ``\\'`` ``\\"`` ``\\\\``
escapes), ``true``/``false``/``null`` literals; identifiers; ``a.b``, ``a['b']``,
``a[i]``; ``!``/``not``/``-``/``empty``; ``* / div % mod + -``; ``< > <= >= lt gt le ge``;
``== != eq ne``; ``&& and || or``; ``c ? a : b``; parentheses; ``name(args)`` and
``value.method(args)``. Not supported (refused with a clear error): EL 3.0 lambdas,
assignment, ``;``, ``+=``, collection literals, ``instanceof``, namespaced functions.
"""

from __future__ import annotations

import ast
import keyword
import math
import re
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Final, NoReturn

from engine.errors import ExpressionError, SandboxViolation

# --------------------------------------------------------------------------------------
# Attribute policy. It lives here rather than in engine.sandbox because juel_prop needs
# it at run time and the sandbox imports this module (not the other way round).
# --------------------------------------------------------------------------------------

#: Attributes that reach frames, code objects or globals without dunders, that reach
#: attributes by name (``str.format``), or that read the real clock.
_INTROSPECTION_ATTRIBUTES: Final = frozenset(
    {
        "gi_frame", "gi_code", "gi_yieldfrom", "gi_running", "gi_suspended",
        "cr_frame", "cr_code", "cr_await", "cr_running", "cr_origin", "cr_suspended",
        "ag_frame", "ag_code", "ag_await", "ag_running",
        "f_back", "f_globals", "f_locals", "f_builtins", "f_code", "f_trace", "f_lasti",
        "tb_frame", "tb_next", "tb_lasti", "tb_lineno",
        "co_code", "co_consts", "co_names",
        "func_globals", "func_code", "func_closure", "func_defaults",
        "cell_contents", "mro", "with_traceback",
    }
)  # fmt: skip
#: Prefixes of the same families, so that attributes added by future Python versions
#: (``f_generator``, ``gi_...``) are refused too.
_INTROSPECTION_PREFIXES: Final = ("gi_", "cr_", "ag_", "f_", "tb_", "co_", "func_")
_FORMAT_ATTRIBUTES: Final = frozenset({"format", "format_map"})
#: ``timestamp`` is fine: it converts a given datetime, it does not read the clock.
_CLOCK_ATTRIBUTES: Final = frozenset({"now", "today", "utcnow", "fromtimestamp", "utcfromtimestamp"})


def attribute_refusal(name: str) -> str | None:
    """Why reading attribute ``name`` is refused, or ``None`` when it is allowed.

    Shared by the sandbox's static check (``x.name`` in Python or a JUEL method call) and
    by :func:`juel_prop` at run time.
    """
    if name.startswith("_"):
        return f"attribute '{name}' is not allowed: names starting with '_' are private"
    if name in _CLOCK_ATTRIBUTES:
        return f"attribute '{name}' is not allowed: scripts must not read the real clock; use now()"
    if name in _FORMAT_ATTRIBUTES:
        return f"attribute '{name}' is not allowed: it can read any attribute; use an f-string"
    if name in _INTROSPECTION_ATTRIBUTES or name.startswith(_INTROSPECTION_PREFIXES):
        return f"attribute '{name}' is not allowed: it reaches interpreter internals"
    return None


# --------------------------------------------------------------------------------------
# Recognising JUEL text
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Eval:
    """One ``${...}``/``#{...}`` inside a text: the inner expression is text[start:end]."""

    marker: str  # "$" or "#"
    start: int
    end: int


_Segment = str | _Eval


def _close_of(text: str, i: int) -> int:
    """Index of the ``}`` closing an eval whose body starts at ``i``, or -1.

    String literals are skipped so that ``${a == '}'}`` closes at the right brace.
    """
    n = len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            i += 1
            while i < n and text[i] != c:
                i += 2 if text[i] == "\\" else 1
        elif c == "}":
            return i
        i += 1
    return -1


def _segments(text: str) -> list[_Segment]:
    """Split ``text`` into literal strings and evals; ``\\${`` and ``\\#{`` are literal."""
    parts: list[_Segment] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\" and text.startswith(("${", "#{"), i + 1):
            literal.append(text[i + 1 : i + 3])
            i += 3
            continue
        if c in "$#" and text.startswith("{", i + 1):
            close = _close_of(text, i + 2)
            if close < 0:
                _syntax(text, i, f"'{c}{{' is never closed with '}}'")
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_Eval(c, i + 2, close))
            i = close + 1
            continue
        literal.append(c)
        i += 1
    if literal:
        parts.append("".join(literal))
    return parts


def _has_eval_start(text: str) -> bool:
    return "${" in text or "#{" in text


def is_juel(text: str) -> bool:
    """True when the whole (stripped) text is exactly one ``${...}`` or ``#{...}``."""
    stripped = text.strip()
    if not stripped.startswith(("${", "#{")):
        return False
    return _close_of(stripped, 2) == len(stripped) - 1


def is_composite(text: str) -> bool:
    """True when ``text`` mixes literal text with one or more ``${...}`` (result: a string).

    An unterminated ``${`` also counts, so that the mistake is reported as a JUEL syntax
    error instead of the text being taken for something else.
    """
    if not _has_eval_start(text) or is_juel(text):
        return False
    try:
        return any(isinstance(part, _Eval) for part in _segments(text))
    except ExpressionError:
        return True


# --------------------------------------------------------------------------------------
# Tokens
# --------------------------------------------------------------------------------------

_KEYWORDS: Final = frozenset(
    {"and", "or", "not", "eq", "ne", "lt", "gt", "le", "ge", "true", "false", "null", "empty",
     "div", "mod", "instanceof"}
)  # fmt: skip

_TOKEN: Final = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<float>(?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+)
  | (?P<int>\d+)
  | (?P<quote>['"])
  | (?P<ident>[^\W\d]\w*)
  | (?P<op>==|!=|<=|>=|&&|\|\||->|\+=|[-+*/%<>!?:.,\[\](){}=;&|])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # int, float, str, ident, kw, op, end
    text: str
    pos: int  # index into the whole text
    value: str | int | float | None = None


def _syntax(text: str, pos: int, reason: str) -> NoReturn:
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    where = f"line {line}, column {column}" if "\n" in text else f"column {column}"
    raise ExpressionError(f"JUEL syntax error at {where}: {reason}", source=text, line=line)


def _tokenize(text: str, start: int, end: int) -> list[_Token]:
    tokens: list[_Token] = []
    i = start
    while i < end:
        m = _TOKEN.match(text, i, end)
        if m is None:
            _syntax(text, i, f"unexpected character {text[i]!r}")
        kind = m.lastgroup
        assert kind is not None
        word = m.group()
        if kind == "ws":
            pass
        elif kind == "quote":
            value, after = _read_string(text, i, end)
            tokens.append(_Token("str", text[i:after], i, value))
            i = after
            continue
        elif kind == "int":
            if len(word) > 1000:
                _syntax(text, i, "number literal too long")
            tokens.append(_Token("int", word, i, int(word)))
        elif kind == "float":
            tokens.append(_Token("float", word, i, float(word)))
        elif kind == "ident":
            tokens.append(_Token("kw" if word in _KEYWORDS else "ident", word, i))
        else:
            tokens.append(_Token("op", word, i))
        i = m.end()
    tokens.append(_Token("end", "", end))
    return tokens


def _read_string(text: str, start: int, end: int) -> tuple[str, int]:
    """Read a JUEL string literal at ``start``; return its value and the index after it."""
    quote = text[start]
    out: list[str] = []
    i = start + 1
    while i < end:
        c = text[i]
        if c == quote:
            return "".join(out), i + 1
        if c == "\\":
            nxt = text[i + 1] if i + 1 < end else ""
            # EL knows exactly three escapes; anything else is an error, as in JUEL.
            if nxt not in ("\\", "'", '"'):
                _syntax(text, i, f"invalid escape sequence '\\{nxt}' (only \\\\, \\' and \\\" are allowed)")
            out.append(nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    _syntax(text, start, "string literal is never closed")


# --------------------------------------------------------------------------------------
# Parser: recursive descent over the EL 2.2 grammar, building Python AST nodes
# --------------------------------------------------------------------------------------

_RELATIONAL: Final = {
    "<": "lt",
    ">": "gt",
    "<=": "le",
    ">=": "ge",
    "lt": "lt",
    "gt": "gt",
    "le": "le",
    "ge": "ge",
}
_EQUALITY: Final = {"==": True, "eq": True, "!=": False, "ne": False}
_ADDITIVE: Final = {"+": "add", "-": "sub"}
_MULTIPLICATIVE: Final = {"*": "mul", "/": "div", "div": "div", "%": "mod", "mod": "mod"}
#: Helpers whose result is already a bool, so the translation need not coerce it again.
_BOOLEAN_HELPERS: Final = frozenset({"__juel_eq", "__juel_lt", "__juel_gt", "__juel_le", "__juel_ge",
                                     "__juel_empty", "__juel_bool"})  # fmt: skip


class _Parser:
    def __init__(self, text: str, start: int, end: int) -> None:
        self.text = text
        self.tokens = _tokenize(text, start, end)
        self.i = 0

    # -- token plumbing
    @property
    def tok(self) -> _Token:
        return self.tokens[self.i]

    def at(self, *words: str) -> bool:
        tok = self.tok
        return tok.kind in ("op", "kw") and tok.text in words

    def take(self) -> _Token:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, word: str, what: str) -> _Token:
        if not self.at(word):
            self.fail(self.tok, f"expected {what}")
        return self.take()

    def fail(self, tok: _Token, reason: str) -> NoReturn:
        found = "end of expression" if tok.kind == "end" else repr(tok.text)
        _syntax(self.text, tok.pos, f"{reason}, found {found}")

    def loc(self, node: ast.expr, pos: int) -> ast.expr:
        """Give ``node`` (and children lacking one) the location of text index ``pos``."""
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1)
        for child in ast.walk(node):
            if "lineno" in child._attributes and not hasattr(child, "lineno"):
                child.lineno = child.end_lineno = line  # type: ignore[attr-defined]
                child.col_offset = child.end_col_offset = col  # type: ignore[attr-defined]
        return node

    def helper(self, name: str, pos: int, *args: ast.expr) -> ast.expr:
        return self.loc(ast.Call(func=ast.Name(id=f"__juel_{name}", ctx=ast.Load()), args=list(args), keywords=[]), pos)

    def boolean(self, node: ast.expr, pos: int) -> ast.expr:
        """Coerce ``node`` to a JUEL boolean unless it is one already."""
        if isinstance(node, ast.BoolOp) or (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not)):
            return node
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            return node
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _BOOLEAN_HELPERS:
            return node
        return self.helper("bool", pos, node)

    # -- grammar
    def parse(self) -> ast.expr:
        node = self.choice()
        if self.tok.kind != "end":
            tok = self.tok
            if tok.text in ("=", "+=", "->", ";"):
                self.fail(
                    tok,
                    f"'{tok.text}' (EL 3.0 assignment, concatenation, lambda or sequence) is not supported",
                )
            self.fail(tok, "expected an operator or the end of the expression")
        return node

    def choice(self) -> ast.expr:
        pos = self.tok.pos
        test = self.or_()
        if not self.at("?"):
            return test
        self.take()
        body = self.choice()
        self.expect(":", "':' of the '? :' operator")
        orelse = self.choice()
        return self.loc(ast.IfExp(test=self.boolean(test, pos), body=body, orelse=orelse), pos)

    def _bool_chain(self, words: tuple[str, ...], op: ast.boolop, operand: Callable[[], ast.expr]) -> ast.expr:
        pos = self.tok.pos
        first = operand()
        if not self.at(*words):
            return first
        values = [self.boolean(first, pos)]
        while self.at(*words):
            self.take()
            at = self.tok.pos
            values.append(self.boolean(operand(), at))
        return self.loc(ast.BoolOp(op=op, values=values), pos)

    def or_(self) -> ast.expr:
        return self._bool_chain(("||", "or"), ast.Or(), self.and_)

    def and_(self) -> ast.expr:
        return self._bool_chain(("&&", "and"), ast.And(), self.equality)

    def equality(self) -> ast.expr:
        node = self.relational()
        while self.at(*_EQUALITY):
            tok = self.take()
            call = self.helper("eq", tok.pos, node, self.relational())
            node = call if _EQUALITY[tok.text] else self.loc(ast.UnaryOp(op=ast.Not(), operand=call), tok.pos)
        return node

    def relational(self) -> ast.expr:
        node = self.additive()
        while self.at(*_RELATIONAL):
            tok = self.take()
            node = self.helper(_RELATIONAL[tok.text], tok.pos, node, self.additive())
        if self.at("instanceof"):
            self.fail(self.tok, "'instanceof' is not supported")
        return node

    def additive(self) -> ast.expr:
        node = self.multiplicative()
        while self.at(*_ADDITIVE):
            tok = self.take()
            node = self.helper(_ADDITIVE[tok.text], tok.pos, node, self.multiplicative())
        return node

    def multiplicative(self) -> ast.expr:
        node = self.unary()
        while self.at(*_MULTIPLICATIVE):
            tok = self.take()
            node = self.helper(_MULTIPLICATIVE[tok.text], tok.pos, node, self.unary())
        return node

    def unary(self) -> ast.expr:
        tok = self.tok
        if self.at("-"):
            self.take()
            operand = self.unary()
            if isinstance(operand, ast.Constant) and type(operand.value) in (int, float):
                return self.loc(ast.Constant(value=-operand.value), tok.pos)  # type: ignore[operator]
            return self.helper("neg", tok.pos, operand)
        if self.at("!", "not"):
            self.take()
            at = self.tok.pos
            return self.loc(ast.UnaryOp(op=ast.Not(), operand=self.boolean(self.unary(), at)), tok.pos)
        if self.at("empty"):
            self.take()
            return self.helper("empty", tok.pos, self.unary())
        return self.value()

    def value(self) -> ast.expr:
        node = self.primary()
        while True:
            if self.at("."):
                self.take()
                name_tok = self.take()
                if name_tok.kind not in ("ident", "kw"):
                    self.fail(name_tok, "expected a property or method name after '.'")
                name = name_tok.text
                if self.at("("):
                    # A method call stays a Python attribute call, so the sandbox applies
                    # its attribute rules statically (refusing _private, format, now ...).
                    if name.startswith("_"):
                        raise SandboxViolation(
                            f"method '{name}' is not allowed: names starting with '_' are private",
                            source=self.text,
                        )
                    func = self.loc(ast.Attribute(value=node, attr=name, ctx=ast.Load()), name_tok.pos)
                    node = self.loc(ast.Call(func=func, args=self.arguments(), keywords=[]), name_tok.pos)
                else:
                    if name.startswith("__"):
                        raise SandboxViolation(f"property '{name}' is not allowed", source=self.text)
                    key = self.loc(ast.Constant(value=name), name_tok.pos)
                    node = self.helper("prop", name_tok.pos, node, key)
            elif self.at("["):
                tok = self.take()
                key = self.choice()
                self.expect("]", "']'")
                if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.startswith("__"):
                    raise SandboxViolation(f"property '{key.value}' is not allowed", source=self.text)
                node = self.helper("prop", tok.pos, node, key)
            elif self.at("("):
                self.fail(self.tok, "only a name or 'value.method' can be called")
            else:
                return node

    def arguments(self) -> list[ast.expr]:
        self.expect("(", "'('")
        args: list[ast.expr] = []
        if not self.at(")"):
            args.append(self.choice())
            while self.at(","):
                self.take()
                args.append(self.choice())
        self.expect(")", "')' or ','")
        return args

    def primary(self) -> ast.expr:
        tok = self.tok
        if tok.kind in ("int", "float", "str"):
            self.take()
            return self.loc(ast.Constant(value=tok.value), tok.pos)
        if tok.kind == "kw" and tok.text in ("true", "false", "null"):
            self.take()
            return self.loc(ast.Constant(value={"true": True, "false": False, "null": None}[tok.text]), tok.pos)
        if self.at("("):
            self.take()
            node = self.choice()
            self.expect(")", "')'")
            return node
        if tok.kind == "ident":
            self.take()
            name = tok.text
            if name.startswith("__"):
                raise SandboxViolation(f"name '{name}' is not allowed", source=self.text)
            if keyword.iskeyword(name) or not name.isidentifier():
                _syntax(self.text, tok.pos, f"identifier '{name}' is not supported")
            func = self.loc(ast.Name(id=name, ctx=ast.Load()), tok.pos)
            if self.at("("):
                return self.loc(ast.Call(func=func, args=self.arguments(), keywords=[]), tok.pos)
            return func
        if tok.kind == "kw":
            self.fail(tok, f"'{tok.text}' is a reserved word")
        if self.at("[", "{"):
            self.fail(tok, "collection literals (EL 3.0) are not supported")
        self.fail(tok, "expected a value")


def to_python_ast(text: str) -> ast.Expression:
    """Translate JUEL ``text`` (one eval or composite text) into a Python expression AST.

    Raises :class:`ExpressionError` (with line and column) for bad syntax and
    :class:`SandboxViolation` for constructs that are refused (``__`` names).
    """
    parts = _segments(text)
    evals = [p for p in parts if isinstance(p, _Eval)]
    if not evals:
        raise ExpressionError("not a JUEL expression: expected ${...} or #{...}", source=text, line=1)
    if len({e.marker for e in evals}) > 1:
        _syntax(text, evals[1].start - 2, "cannot mix ${...} and #{...} in one expression")
    literal_only_whitespace = all(isinstance(p, _Eval) or not p.strip() for p in parts)
    if len(evals) == 1 and literal_only_whitespace:
        body = _parse_eval(text, evals[0])
    else:
        args: list[ast.expr] = []
        for part in parts:
            if isinstance(part, _Eval):
                args.append(_parse_eval(text, part))
            else:
                args.append(ast.Constant(value=part, lineno=1, col_offset=0, end_lineno=1, end_col_offset=0))
        body = ast.Call(func=ast.Name(id="__juel_concat", ctx=ast.Load()), args=args, keywords=[])
    tree = ast.Expression(body=body)
    return ast.fix_missing_locations(tree)


def _parse_eval(text: str, part: _Eval) -> ast.expr:
    parser = _Parser(text, part.start, part.end)
    if parser.tok.kind == "end":
        _syntax(text, part.start, "empty expression")
    return parser.parse()


def method_calls(text: str) -> list[str]:
    """The ``x.method(...)`` calls a JUEL text makes, in source order, for the deploy validator.

    Each is rendered as ``receiver.method`` where the receiver is written with identifiers,
    ``.prop``, ``[...]`` and ``(...)``: ``${customer.prop("age").numberValue()}`` gives
    ``["customer.prop", "customer.prop(...).numberValue"]``. Plain function calls such as
    ``${now()}`` are not listed: they resolve to helpers or ``extra`` names, and an unknown
    one fails like an unknown variable. A validator that only allows calls on the
    ``execution`` object refuses every entry not starting with ``"execution."``.
    """
    tree = to_python_ast(text)
    found: list[tuple[int, int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            found.append((node.lineno, node.col_offset, f"{_render(node.func.value)}.{node.func.attr}"))
    return list(dict.fromkeys(name for _, _, name in sorted(found)))


def _render(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "__juel_prop":
            base, key = node.args
            if isinstance(key, ast.Constant) and isinstance(key.value, str) and key.value.isidentifier():
                return f"{_render(base)}.{key.value}"
            return f"{_render(base)}[...]"
        if isinstance(func, ast.Attribute):
            return f"{_render(func.value)}.{func.attr}(...)"
        if isinstance(func, ast.Name):
            return f"{func.id}(...)"
    if isinstance(node, ast.Constant):
        return repr(node.value)
    return "(...)"


# --------------------------------------------------------------------------------------
# Runtime helpers: JUEL semantics (EL 2.2 spec, section 1.8 coercions)
# --------------------------------------------------------------------------------------

_Number = int | float | Decimal
_INT_TEXT: Final = re.compile(r"[+-]?\d{1,1000}")
_FLOAT_TEXT: Final = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return type(value).__name__


def _is_number(value: object) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _number(value: object, op: str) -> _Number:
    """Coerce to a number as EL does: null and '' are 0, numeric strings are parsed."""
    if value is None:
        return 0
    if _is_number(value):
        return value  # type: ignore[return-value]
    if isinstance(value, str):
        if value == "":
            return 0
        if _INT_TEXT.fullmatch(value):
            return int(value)
        if _FLOAT_TEXT.fullmatch(value):
            return float(value)
        raise ExpressionError(f"'{op}': cannot convert {value[:50]!r} to a number")
    raise ExpressionError(f"'{op}': cannot use a {_type_name(value)} value as a number")


def _align(x: _Number, y: _Number) -> tuple[_Number, _Number]:
    """Python cannot mix Decimal and float; EL promotes to BigDecimal, so do we."""
    if isinstance(x, Decimal) != isinstance(y, Decimal):
        if isinstance(x, float):
            x = Decimal(repr(x))
        if isinstance(y, float):
            y = Decimal(repr(y))
    return x, y


def _arith(a: object, b: object, op: str, fn: Callable[[Any, Any], _Number]) -> _Number:
    x, y = _align(_number(a, op), _number(b, op))
    try:
        return fn(x, y)
    except (ArithmeticError, InvalidOperation) as exc:
        raise ExpressionError(f"'{op}': {exc or type(exc).__name__}") from None


def juel_add(a: object, b: object) -> _Number:
    """JUEL ``+``: adds numbers (null counts as 0). Text is refused rather than concatenated.

    EL would coerce strings to numbers; silently turning ``"1" + 2`` into 3 or ``"a" + 2``
    into an error deep in a gateway is worse than saying so up front.
    """
    if isinstance(a, str) or isinstance(b, str):
        raise ExpressionError(
            f"'+' adds numbers only, got {_type_name(a)} and {_type_name(b)}; "
            "to build text use a composite expression such as 'Dear ${name}'"
        )
    return _arith(a, b, "+", lambda x, y: x + y)


def juel_sub(a: object, b: object) -> _Number:
    """JUEL ``-`` on numbers (numeric strings and null are coerced)."""
    return _arith(a, b, "-", lambda x, y: x - y)


def juel_mul(a: object, b: object) -> _Number:
    """JUEL ``*`` on numbers; never sequence repetition."""
    return _arith(a, b, "*", lambda x, y: x * y)


def juel_div(a: object, b: object) -> _Number:
    """JUEL ``/`` and ``div``: floating-point division (Decimal when an operand is one).

    Java would return Infinity for division by zero; an error is more useful here.
    """
    if a is None and b is None:
        return 0
    x, y = _align(_number(a, "/"), _number(b, "/"))
    if y == 0:
        raise ExpressionError("'/': division by zero")
    if isinstance(x, Decimal):
        return _arith(x, y, "/", lambda p, q: p / q)
    return _arith(x, y, "/", lambda p, q: float(p) / float(q))


def juel_mod(a: object, b: object) -> _Number:
    """JUEL ``%`` and ``mod``: Java remainder (the sign follows the dividend)."""
    if a is None and b is None:
        return 0
    x, y = _align(_number(a, "%"), _number(b, "%"))
    if y == 0:
        raise ExpressionError("'%': division by zero")
    if isinstance(x, Decimal):
        return _arith(x, y, "%", lambda p, q: p % q)  # Decimal % already truncates like Java
    if isinstance(x, float) or isinstance(y, float):
        return math.fmod(x, y)
    assert isinstance(x, int) and isinstance(y, int)
    r = abs(x) % abs(y)
    return -r if x < 0 else r


def juel_neg(value: object) -> _Number:
    """JUEL unary ``-``."""
    number = _number(value, "-")
    return -number


def juel_bool(value: object) -> bool:
    """Coerce to boolean as EL does: null and '' are false, strings are 'true' or not."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() == "true"
    raise ExpressionError(f"cannot use a {_type_name(value)} value as a boolean")


def juel_empty(value: object) -> bool:
    """JUEL ``empty``: true for null, '' and empty lists, maps and sets."""
    if value is None:
        return True
    if isinstance(value, Sized) and not isinstance(value, type):
        return len(value) == 0
    return False


def juel_str(value: object) -> str:
    """Text of a value as JUEL prints it: null is '', booleans are lower case."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def juel_concat(*parts: object) -> str:
    """Composite text: the concatenation of every part's :func:`juel_str`."""
    return "".join(juel_str(part) for part in parts)


def juel_eq(a: object, b: object) -> bool:
    """JUEL ``==`` (EL 1.8.2): null-safe, numbers compared numerically, then booleans, then text."""
    if a is b:
        return True
    if a is None or b is None:
        return False
    if _is_number(a) or _is_number(b):
        x, y = _align(_number(a, "=="), _number(b, "=="))
        return bool(x == y)
    if isinstance(a, bool) or isinstance(b, bool):
        return _strict_bool(a) == _strict_bool(b)
    if isinstance(a, str) or isinstance(b, str):
        return juel_str(a) == juel_str(b)
    return bool(a == b)


def _strict_bool(value: object) -> bool:
    if isinstance(value, bool | str):
        return juel_bool(value)
    raise ExpressionError(f"'==': cannot compare a {_type_name(value)} value with a boolean")


def _relational(a: object, b: object, op: str, fn: Callable[[Any, Any], bool]) -> bool:
    """JUEL ``< > <= >=`` (EL 1.8.1): null compares false, numbers numerically, text as text."""
    if a is b and op in ("<=", ">="):
        return True
    if a is None or b is None:
        return False
    if _is_number(a) or _is_number(b):
        x, y = _align(_number(a, op), _number(b, op))
        return bool(fn(x, y))
    try:
        return bool(fn(a, b))
    except TypeError:
        raise ExpressionError(f"'{op}': cannot compare {_type_name(a)} with {_type_name(b)}") from None


def juel_lt(a: object, b: object) -> bool:
    """JUEL ``<`` / ``lt``."""
    return _relational(a, b, "<", lambda x, y: x < y)


def juel_gt(a: object, b: object) -> bool:
    """JUEL ``>`` / ``gt``."""
    return _relational(a, b, ">", lambda x, y: x > y)


def juel_le(a: object, b: object) -> bool:
    """JUEL ``<=`` / ``le``."""
    return _relational(a, b, "<=", lambda x, y: x <= y)


def juel_ge(a: object, b: object) -> bool:
    """JUEL ``>=`` / ``ge``."""
    return _relational(a, b, ">=", lambda x, y: x >= y)


def _index(key: object) -> int:
    if isinstance(key, bool):
        raise ExpressionError("a list index must be a number, not a boolean")
    if isinstance(key, int):
        return key
    number = _number(key, "[]")
    if isinstance(number, int):
        return number
    if number != int(number):
        raise ExpressionError(f"a list index must be a whole number, not {number}")
    return int(number)


def juel_prop(base: object, key: object) -> object:
    """JUEL property access ``base.key`` / ``base[key]``.

    ``null.x`` is null; a mapping gives its value (null when missing); a list or tuple
    gives its element (null when out of range, as EL's ListELResolver does); any other
    object gives its attribute, or the result of its Java-bean getter ``getKey()`` /
    ``isKey()``, but never a method (methods are called as ``base.name(...)``).
    Mapping keys are data and may be any string; attribute names starting with ``_`` and
    the sandbox's refused attributes (``format``, ``now``, ``gi_frame`` ...) raise
    :class:`SandboxViolation`.
    """
    if base is None:
        return None
    if isinstance(base, Mapping):
        try:
            return base.get(key)
        except TypeError:
            raise ExpressionError(f"cannot use a {_type_name(key)} value as a map key") from None
    if isinstance(base, list | tuple):
        index = _index(key)
        return base[index] if 0 <= index < len(base) else None
    if not isinstance(key, str):
        raise ExpressionError(f"cannot read [{_type_name(key)}] of a {_type_name(base)} value")
    refusal = attribute_refusal(key)
    if refusal:
        raise SandboxViolation(refusal)
    missing = object()
    value = getattr(base, key, missing)
    if value is missing:
        suffix = key[:1].upper() + key[1:]
        for getter_name in (f"get{suffix}", f"is{suffix}"):
            getter = getattr(base, getter_name, None)
            if callable(getter):
                value = getter()
                break
        else:
            raise ExpressionError(f"property '{key}' not found on a {_type_name(base)} value")
    if callable(value):
        # A method handed out as a value could be called later by a helper (map, sorted)
        # without the sandbox's method guards; JUEL calls methods as base.name(...).
        raise ExpressionError(f"'{key}' is a method of a {_type_name(base)} value; call it as {key}(...)")
    return value


#: What translated JUEL calls, by the names the AST uses. The sandbox puts these in the
#: builtins of every evaluation; user-written Python cannot name them (``__`` prefix).
RUNTIME: Final[Mapping[str, object]] = MappingProxyType(
    {
        "__juel_prop": juel_prop,
        "__juel_empty": juel_empty,
        "__juel_bool": juel_bool,
        "__juel_eq": juel_eq,
        "__juel_lt": juel_lt,
        "__juel_gt": juel_gt,
        "__juel_le": juel_le,
        "__juel_ge": juel_ge,
        "__juel_add": juel_add,
        "__juel_sub": juel_sub,
        "__juel_mul": juel_mul,
        "__juel_div": juel_div,
        "__juel_mod": juel_mod,
        "__juel_neg": juel_neg,
        "__juel_concat": juel_concat,
    }
)
