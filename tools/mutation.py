"""Mutation testing of the queue core and the output writer, on SQLite.

    uv run python tools/mutation.py                      # every module below
    uv run python tools/mutation.py traxd/outputs.py     # one module
    uv run python tools/mutation.py --list traxd/queue/store.py   # print the mutants, run nothing

One mutant at a time: the module's syntax tree is changed in one place, and a forked child installs the changed
module in place of the real one (nothing on disk changes) and runs the few test files that exercise it with
`pytest -x`. A failing or timed-out run kills the mutant. Lines the tests never execute are not run (their
mutants survive at once). Survivors listed in tools/mutation-equivalents.txt (no behaviour can tell them from the
original) are left out of the score. The exit status is 1 when a module scores below --min-score.
"""

from __future__ import annotations

import argparse
import ast
import copy
import importlib.util
import json
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EQUIVALENTS = ROOT / "tools" / "mutation-equivalents.txt"
# Address space per run: a mutant whose loop grows without end (one reached 10 GB) dies of MemoryError, a kill,
# instead of taking a shared machine's memory. The unchanged code's run must fit in it too, so a limit too small
# shows up at once as a failing baseline.
MEMORY_LIMIT = 4 << 30
QUEUE_TESTS = [
    "tests/test_store.py", "tests/test_store_group.py", "tests/test_queue_guarantees.py", "tests/test_search.py",
    "tests/test_durability.py::test_paid_checkpoint_is_stored_and_guarded_like_any_checkpoint", "tests/test_pool.py",
    "tests/test_resilience.py",
]  # fmt: skip
TARGETS: dict[str, list[str]] = {
    "traxd/queue/transitions.py": ["tests/test_transitions.py", *QUEUE_TESTS],
    "traxd/queue/store.py": QUEUE_TESTS,
    "traxd/queue/driver.py": [*QUEUE_TESTS, "tests/test_bad_database.py"],
    "traxd/outputs.py": ["tests/test_outputs.py", "tests/test_output_guarantees.py", "tests/test_subtitles.py",
                         "tests/test_speakers.py", "tests/test_search.py", "tests/test_disk_full.py"],
}
# Code only PostgreSQL runs: a SQLite run cannot judge it (the PostgreSQL suite in .ci/run covers it).
POSTGRES_ONLY = {"PostgresDriver"}
SWAP_CMP = {ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE,
            ast.GtE: ast.Gt, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is}  # fmt: skip
SWAP_BIN = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
            ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult}  # fmt: skip
SQL_COND = re.compile(r"(WHERE|AND) (\w+) = $")  # "… AND col = {param}": the condition can be dropped
SQL_LITERAL_COND = re.compile(r" AND \w+ = '\w+'|WHERE \w+ = '\w+' AND ")
DROP_ARGS = {"and_", "where"}


@dataclass(frozen=True)
class Mutant:
    """One change: where (walk index of the node), what, and a key stable across unrelated edits."""

    index: int
    line: int
    scope: str
    what: str
    apply: Callable[[ast.AST, dict[ast.AST, ast.AST]], None]

    @property
    def key(self) -> str:
        return f"{self.scope}: {self.what}"


# -- generating mutants ------------------------------------------------------------------------
def _src(node: ast.AST) -> str:
    return ast.unparse(node).replace("\n", " ")[:70]


def _replace(parent_map: dict[ast.AST, ast.AST], old: ast.AST, new: ast.AST) -> None:
    parent = parent_map[old]
    for field, value in ast.iter_fields(parent):
        if value is old:
            setattr(parent, field, new)
        elif isinstance(value, list) and any(v is old for v in value):
            value[next(i for i, v in enumerate(value) if v is old)] = new


def _cmp(node: ast.Compare) -> Iterator[tuple[str, Callable]]:
    for i, op in enumerate(node.ops):
        if type(op) in SWAP_CMP:
            new = SWAP_CMP[type(op)]
            yield f"{_src(node)}  [{type(op).__name__}->{new.__name__}]", lambda n, p, i=i, new=new: n.ops.__setitem__(i, new())


def _binop(node: ast.BinOp) -> Iterator[tuple[str, Callable]]:
    new = SWAP_BIN.get(type(node.op))
    if new:
        yield f"{_src(node)}  [{type(node.op).__name__}->{new.__name__}]", lambda n, p: setattr(n, "op", new())


def _boolop(node: ast.BoolOp) -> Iterator[tuple[str, Callable]]:
    new = ast.Or if isinstance(node.op, ast.And) else ast.And
    yield f"{_src(node)}  [{type(node.op).__name__}->{new.__name__}]", lambda n, p: setattr(n, "op", new())
    for i, value in enumerate(node.values):
        yield f"{_src(node)}  [drop {_src(value)}]", lambda n, p, i=i: _drop_operand(n, p, i)


def _drop_operand(node: ast.BoolOp, parents: dict, i: int) -> None:
    del node.values[i]
    if len(node.values) == 1:
        _replace(parents, node, node.values[0])


def _unary(node: ast.UnaryOp) -> Iterator[tuple[str, Callable]]:
    if isinstance(node.op, (ast.Not, ast.USub)):
        yield f"{_src(node)}  [drop {type(node.op).__name__}]", lambda n, p: _replace(p, n, n.operand)


def _const(node: ast.Constant, in_fstring: bool) -> Iterator[tuple[str, Callable]]:
    v = node.value
    if isinstance(v, bool):
        yield f"{v!r}  [-> {not v!r}]", lambda n, p: setattr(n, "value", not v)
    elif isinstance(v, (int, float)):
        yield f"{v!r}  [-> {v + 1!r}]", lambda n, p: setattr(n, "value", v + 1)
    elif isinstance(v, str) and not in_fstring:
        yield f"{_src(node)}  [-> XX…XX]", lambda n, p: setattr(n, "value", f"XX{v}XX")
    if isinstance(v, str):
        for m in SQL_LITERAL_COND.finditer(v):
            cut = v[: m.start()] + ("WHERE " if m.group().startswith("WHERE") else "") + v[m.end() :]
            yield f"SQL {m.group().strip()!r}  [drop]", lambda n, p, cut=cut: setattr(n, "value", cut)


def _fstring(node: ast.JoinedStr) -> Iterator[tuple[str, Callable]]:
    values = node.values
    for i, piece in enumerate(values[:-1]):
        if isinstance(piece, ast.Constant) and isinstance(values[i + 1], ast.FormattedValue):
            m = SQL_COND.search(str(piece.value))
            if m:
                yield f"SQL '{m.group(2)} = ?'  [drop]", lambda n, p, i=i: _drop_sql_param_cond(n, i)


def _drop_sql_param_cond(node: ast.JoinedStr, i: int) -> None:
    """`col = ?` becomes `col = col AND ? IS NOT NULL`: the condition is gone, the parameters still line up."""
    piece = node.values[i]
    piece.value = SQL_COND.sub(lambda m: f"{m.group(1)} {m.group(2)} = {m.group(2)} AND ", piece.value)
    rest = node.values[i + 2] if i + 2 < len(node.values) else None
    if isinstance(rest, ast.Constant):
        rest.value = " IS NOT NULL" + rest.value
    else:
        node.values.insert(i + 2, ast.Constant(" IS NOT NULL"))


def _call(node: ast.Call) -> Iterator[tuple[str, Callable]]:
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    if name in DROP_ARGS and len(node.args) > 1:
        for i, arg in enumerate(node.args):
            yield f"{name}(… {_src(arg)} …)  [drop]", lambda n, p, i=i: n.args.pop(i)
    if name == "values":
        for i, kw in enumerate(node.keywords):
            yield f"values({kw.arg}=…)  [drop]", lambda n, p, i=i: n.keywords.pop(i)


def _dict(node: ast.Dict) -> Iterator[tuple[str, Callable]]:
    for i, key in enumerate(node.keys):
        if key is not None:
            yield f"{{{_src(key)}: …}}  [drop]", lambda n, p, i=i: (n.keys.pop(i), n.values.pop(i))


def _stmt(node: ast.stmt) -> Iterator[tuple[str, Callable]]:
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call) or isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
        yield f"{_src(node)}  [delete]", lambda n, p: _replace(p, n, ast.Pass())


def _skipped(tree: ast.Module) -> set[int]:
    """ids of nodes not to mutate: docstrings, annotations, imports, PostgreSQL-only classes."""
    skip: set[int] = set()

    def hide(node: ast.AST | None) -> None:
        if node is not None:
            skip.update(id(n) for n in ast.walk(node))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(node) is not None:
            hide(node.body[0])
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (isinstance(node, ast.ClassDef) and node.name in POSTGRES_ONLY):
            hide(node)
        if isinstance(node, ast.FunctionDef):
            hide(node.returns)
            for a in [*node.args.args, *node.args.kwonlyargs, *node.args.posonlyargs]:
                hide(a.annotation)
        if isinstance(node, ast.AnnAssign):
            hide(node.annotation)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") in {"TypeVar", "cast"}:
            hide(node)
    return skip


def _scopes(tree: ast.Module) -> dict[int, str]:
    """Qualified name of the function or class around each node."""
    names: dict[int, str] = {}

    def visit(node: ast.AST, scope: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = f"{scope}.{child.name}".lstrip(".") if isinstance(child, (ast.FunctionDef, ast.ClassDef)) else scope
            names[id(child)] = inner or "<module>"
            visit(child, inner)

    visit(tree, "")
    return names


def mutants(tree: ast.Module) -> list[Mutant]:
    """Every mutant of a module, in source order, with unique keys."""
    skip, scopes = _skipped(tree), _scopes(tree)
    fstring_parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    out: list[Mutant] = []
    for index, node in enumerate(ast.walk(tree)):
        if id(node) in skip:
            continue
        for what, fn in _operators(node, id(node) in fstring_parts):
            out.append(Mutant(index, getattr(node, "lineno", 0), scopes.get(id(node), "<module>"), what, fn))
    seen: dict[str, int] = {}
    unique = []
    for m in sorted(out, key=lambda m: (m.line, m.index)):
        seen[m.key] = seen.get(m.key, 0) + 1
        what = m.what if seen[m.key] == 1 else f"{m.what} #{seen[m.key]}"
        unique.append(Mutant(m.index, m.line, m.scope, what, m.apply))
    return unique


def _operators(node: ast.AST, in_fstring: bool) -> Iterator[tuple[str, Callable]]:
    kinds: list[tuple[type, Callable[[ast.AST], Iterator]]] = [
        (ast.Compare, _cmp), (ast.BinOp, _binop), (ast.BoolOp, _boolop), (ast.UnaryOp, _unary),
        (ast.JoinedStr, _fstring), (ast.Call, _call), (ast.Dict, _dict), (ast.stmt, _stmt),
    ]  # fmt: skip
    if isinstance(node, ast.Constant):
        yield from _const(node, in_fstring)
    for kind, gen in kinds:
        if isinstance(node, kind):
            yield from gen(node)


def mutated(tree: ast.Module, m: Mutant) -> ast.Module:
    """A copy of the tree with the one change applied."""
    new = copy.deepcopy(tree)
    nodes = list(ast.walk(new))
    parents = {child: parent for parent in nodes for child in ast.iter_child_nodes(parent)}
    m.apply(nodes[m.index], parents)
    return ast.fix_missing_locations(new)


# -- running -----------------------------------------------------------------------------------
def _install(module_path: str, tree: ast.Module) -> None:
    """Make `import <module>` give the code of `tree` (in this process only)."""
    name = _name(module_path)
    parent, _, leaf = name.rpartition(".")
    __import__(parent)
    spec = importlib.util.spec_from_file_location(name, ROOT / module_path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    exec(compile(tree, str(ROOT / module_path), "exec"), module.__dict__)  # noqa: S102 - the point of the tool
    setattr(sys.modules[parent], leaf, module)


def _pytest(tests: list[str], plugins: list[object] = ()) -> int:  # type: ignore[assignment]
    import pytest

    args = [*tests, "-x", "-q", "-p", "no:cacheprovider", "-o", "timeout=0", "--no-header", "-W", "ignore"]
    return int(pytest.main(args, plugins=list(plugins)))


def run_child(module_path: str, tree: ast.Module | None, tests: list[str], timeout: float, trace: Path | None = None) -> str:
    """'survived', 'killed' or 'timeout' for one run in a forked child (tree None: the unchanged module)."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setpgid(0, 0)  # its own process group: a timeout kills whatever it started too
            resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1), os.dup2(devnull, 2)
            if tree is not None:
                _install(module_path, tree)
            code = _traced(module_path, tests, trace) if trace else _pytest(tests)
        finally:
            os._exit(code)
    try:
        os.setpgid(pid, pid)
    except OSError:
        pass  # the child did it first
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return "survived" if os.waitstatus_to_exitcode(status) == 0 else "killed"
        time.sleep(0.02)
    os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return "timeout"


class _Tracer:
    """Which tests run which lines of one file (collection counts as '<import>'), and the tests in order."""

    def __init__(self, filename: str) -> None:
        self.filename, self.current = filename, "<import>"
        self.lines: dict[int, set[str]] = {}
        self.order: list[str] = []

    def pytest_collection_finish(self, session) -> None:
        self.order = [item.nodeid for item in session.items]

    def pytest_runtest_setup(self, item) -> None:
        self.current = item.nodeid

    def local(self, frame, event, arg):
        if event == "line":
            self.lines.setdefault(frame.f_lineno, set()).add(self.current)
        return self.local

    def __call__(self, frame, event, arg):
        if frame.f_code.co_filename == self.filename:
            self.lines.setdefault(frame.f_lineno, set()).add(self.current)
            return self.local
        return None


def _traced(module_path: str, tests: list[str], out: Path) -> int:
    """Run the tests recording who runs which line; write that and the loaded modules to `out` as JSON."""
    tracer = _Tracer(str(ROOT / module_path))
    sys.settrace(tracer)
    threading.settrace(tracer)
    code = _pytest(tests, [tracer])
    sys.settrace(None)
    threading.settrace(None)  # type: ignore[arg-type]
    modules = [m for m in sys.modules if not m.startswith(("tests", "__", "_pytest", "pytest"))]
    lines = {n: sorted(who) for n, who in tracer.lines.items()}
    out.write_text(json.dumps({"lines": lines, "order": tracer.order, "modules": modules}))
    return code


def _preload(module_path: str, loaded: list[str]) -> None:
    """Import here what the tests loaded that cannot see the target module, so each child imports only the rest."""
    target = _name(module_path)
    users = _importers_of(target)
    for name in loaded:
        if name != target and name not in users:
            try:
                __import__(name)
            except Exception:  # noqa: BLE001, S112 - a module that will not import twice is left to the child
                continue
    if target in sys.modules:
        sys.exit(f"preloading imported {target}: the import scan in _importers_of missed a path")


def _name(module_path: str) -> str:
    return module_path.removesuffix(".py").replace("/", ".")


def _importers_of(target: str) -> set[str]:
    """Every traxd/tests module whose import-time code imports `target`, directly or through others.

    Imports inside functions do not count: they run in the child, after the mutant is installed.
    """
    paths = [*ROOT.glob("traxd/**/*.py"), *ROOT.glob("tests/**/*.py")]
    files = {_name(str(p.relative_to(ROOT))).removesuffix(".__init__"): p for p in paths}
    imports = {name: _import_time_imports(path, files) for name, path in files.items()}
    users, grew = {target}, True
    while grew:
        new = {m for m, deps in imports.items() if m not in users and deps & users}
        users |= new
        grew = bool(new)
    return users - {target}


def _import_time_imports(path: Path, modules: dict[str, Path]) -> set[str]:
    found: set[str] = set()
    todo = list(ast.parse(path.read_text(encoding="utf-8")).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules.keys()
            found.update(subs or {node.module})
        elif not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            todo.extend(n for n in ast.iter_child_nodes(node) if isinstance(n, ast.stmt))
    return found


def _tests_for(node: ast.AST, stmt: ast.AST, lines: dict[str, list[str]], order: list[str]) -> list[str]:
    """The tests that run the mutated lines, in collection order (all of them for import-time lines).

    A constant on a continuation line of a statement gets no line event of its own: then its statement's lines count.
    """
    who: set[str] = set()
    for where in (node, stmt):
        first, last = getattr(where, "lineno", 0), getattr(where, "end_lineno", 0) or 0
        who = who or {t for n in range(first, last + 1) for t in lines.get(str(n), [])}
    return order if "<import>" in who else [t for t in order if t in who]


def _statements(tree: ast.Module) -> dict[int, ast.AST]:
    """Walk index of each node -> the innermost statement holding it."""
    nodes = list(ast.walk(tree))
    index = {id(n): i for i, n in enumerate(nodes)}
    out: dict[int, ast.AST] = {}
    for node in nodes:  # breadth first: inner statements come later and win
        if isinstance(node, ast.stmt):
            for inner in ast.walk(node):
                out[index[id(inner)]] = node
    return out


def load_equivalents() -> dict[str, set[str]]:
    """module -> mutant keys declared equivalent (lines `module | key | reason`)."""
    out: dict[str, set[str]] = {}
    for line in EQUIVALENTS.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            module, key, _reason = (part.strip() for part in line.split(" | ", 2))
            out.setdefault(module, set()).add(key)
    return out


def run_module(module_path: str, args: argparse.Namespace, equivalent: set[str]) -> float:
    """Run every mutant of one module; print survivors and the score; return the score."""
    tests = TARGETS[module_path]
    tree = ast.parse((ROOT / module_path).read_text(encoding="utf-8"))
    found = [m for m in mutants(tree) if re.search(args.only, f"{module_path}:{m.line} | {m.key}")]
    started = time.monotonic()
    trace = Path(f"/tmp/trax-mutation-{os.getpid()}.json")
    if run_child(module_path, None, tests, args.timeout * 10, trace) != "survived":
        sys.exit(f"{module_path}: the tests fail on the unchanged code; fix that first")
    seen = json.loads(trace.read_text())
    trace.unlink()
    _preload(module_path, seen["modules"])
    if args.verbose:
        print(f"  baseline {time.monotonic() - started:.1f} s; {len(sys.modules)} modules preloaded", flush=True)
    base_time = time.monotonic() - started
    timeout = max(args.timeout, 3 * base_time)
    stale = equivalent - {m.key for m in mutants(tree)}
    killed, survivors, nodes = 0, [], list(ast.walk(tree))
    statements = _statements(tree)
    for m in found:
        t0 = time.monotonic()
        chosen = _tests_for(nodes[m.index], statements.get(m.index, tree), seen["lines"], seen["order"])
        outcome = run_child(module_path, mutated(tree, m), chosen, timeout) if chosen else "survived"
        if args.verbose:
            print(f"  {outcome:8} {time.monotonic() - t0:5.1f} s  {module_path}:{m.line} | {m.key}", flush=True)
        if outcome == "survived" and m.key in equivalent:
            continue
        killed += outcome != "survived"
        if outcome == "survived":
            survivors.append(m)
    return _report(module_path, found, killed, survivors, stale, time.monotonic() - started)


def _report(module_path: str, found: list[Mutant], killed: int, survivors: list[Mutant], stale: set[str], took: float) -> float:
    counted = killed + len(survivors)
    score = killed / counted if counted else 1.0
    for m in survivors:
        print(f"  SURVIVED {module_path}:{m.line} | {m.key}")
    for key in sorted(stale):
        print(f"  NOTE equivalent entry matches no mutant any more: {module_path} | {key}")
    print(f"{module_path}: {killed}/{counted} killed = {score:.1%} "
          f"({len(found) - counted} equivalent left out), {took:.0f} s", flush=True)  # fmt: skip
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", default=list(TARGETS), help="module paths (default: all)")
    parser.add_argument("--list", action="store_true", help="print the mutants and run nothing")
    parser.add_argument("--timeout", type=float, default=20.0, help="least seconds per mutant before it counts as killed")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every mutant's outcome and time")
    parser.add_argument("--only", default="", help="run only the mutants whose 'module:line | key' matches this regex")
    parser.add_argument("--min-score", type=float, default=0.9)
    args = parser.parse_args()
    os.chdir(ROOT)
    for var in ("TRAX_TEST_PG_URL", "TRAX_REQUIRE_PG"):
        os.environ.pop(var, None)  # SQLite only
    sys.path.insert(0, str(ROOT))
    equivalents = load_equivalents()
    if args.list:
        for module_path in args.modules:
            for m in mutants(ast.parse((ROOT / module_path).read_text(encoding="utf-8"))):
                print(f"{module_path}:{m.line} | {m.key}")
        return
    if len(args.modules) > 1:  # one process per module: what one preloads must not leak into the next
        flags = [f"--timeout={args.timeout}", f"--min-score={args.min_score}", f"--only={args.only}",
                 *(["-v"] if args.verbose else [])]  # fmt: skip
        codes = [subprocess.run([sys.executable, __file__, mp, *flags], check=False).returncode for mp in args.modules]
        sys.exit(max(codes))
    import pytest  # noqa: F401 - loaded once here, shared by every forked child

    (module_path,) = args.modules
    score = run_module(module_path, args, equivalents.get(module_path, set()))
    sys.exit(0 if score >= args.min_score else 1)


if __name__ == "__main__":
    main()
