#!/usr/bin/env python3
"""Syntax check for every Swift file of the Swift package, without a Swift toolchain.

This machine (and CI) runs Linux with no `swiftc`, so the generated UniFFI
bindings, the hand-written URLSession sugar, the XCTest tests and Package.swift
cannot be compiled here. What we *can* check is that each file is syntactically
valid Swift: we parse it with tree-sitter's Swift grammar (the
`tree-sitter-swift` wheel) and require zero ERROR nodes and zero MISSING nodes
(tree-sitter inserts a zero-width MISSING node when it recovers by assuming a
token that is not there, e.g. an unclosed brace). This catches broken
generation, bad merges and typos; it does not type-check anything.

Usage:
    check_swift_parse.py [--no-allowances] [--require FILE]... [PATH]...
        Check PATH (files or directories, default: bindings/TokenKeeper) and print one
        line per file, then `N passed, M failed`. Exit 1 if any file fails, if
        no file was found, or if a --require'd file is absent.
    check_swift_parse.py --expect-fail FILE...
        Negative test of this checker: every FILE must be *rejected*. Exit 1 if
        one of them parses cleanly (the check would have let it through).

Known grammar gaps (narrow, AST-checked allowances)
---------------------------------------------------
tree-sitter-swift (checked up to 0.7.4 and its main branch) rejects two
constructs that UniFFI 0.32 emits and that are valid Swift. Each is accepted
only in its exact shape, counted, and reported per file; anything else inside
or around them is still an error:

* `attribute-in-#if` (SE-0367, Swift 5.8): an `#if` clause that holds only
  attributes for the declaration after `#endif`, as UniFFI writes
      #if swift(>=5.8)
          @_documentation(visibility: private)
      #endif
      public func lift(...)
  Accepted when the ERROR node holds nothing but error-free `attribute` nodes,
  sits right after an `#if`/`#elseif`/`#else` directive and right before an
  `#endif`/`#else`/`#elseif` directive, and a declaration follows.
* `void-closure`: the closure `{ () }` returning the empty tuple, which UniFFI
  writes as `let writeReturn = { () }` for callback methods returning nothing
  (the grammar has no empty-tuple expression). Accepted when the whole closure
  is exactly `{ () }` up to whitespace.

Directories named `.build`, `.swiftpm` and `*.xcframework` are skipped: they
hold SwiftPM/Xcode output, not sources.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tree_sitter
    import tree_sitter_swift
except ImportError as exc:  # pragma: no cover - environment problem, not a parse result
    sys.exit(
        f"check_swift_parse: {exc}. Run scripts/check-swift.sh, which installs the pinned "
        "tree-sitter and tree-sitter-swift into a venv."
    )

SKIPPED_DIRS = {".build", ".swiftpm", "DerivedData"}
MAX_REPORTED = 5  # problems listed per file; the count is always complete


@dataclass
class FileResult:
    path: Path
    problems: list[str] = field(default_factory=list)
    count: int = 0
    allowed: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.count == 0


def make_parser() -> tree_sitter.Parser:
    language = tree_sitter.Language(tree_sitter_swift.language())
    return tree_sitter.Parser(language)


COMMENT_TYPES = {"comment", "multiline_comment"}


def _skip_comments(node, step):
    while node is not None and node.type in COMMENT_TYPES:
        node = step(node)
    return node


def _directive_kind(node) -> str | None:
    """`#if`, `#elseif`, `#else` or `#endif` for a `directive` node, else None."""
    if node is None or node.type != "directive":
        return None
    match = re.match(rb"\s*#(if|elseif|else|endif)\b", node.text)
    return "#" + match.group(1).decode() if match else None


def _attribute_in_if(node) -> bool:
    """SE-0367 `#if <cond> @attr... #endif <declaration>`; see the module doc."""
    if not node.children or any(c.type != "attribute" or c.has_error for c in node.children):
        return False
    before = _skip_comments(node.prev_sibling, lambda n: n.prev_sibling)
    after = _skip_comments(node.next_sibling, lambda n: n.next_sibling)
    if _directive_kind(before) not in {"#if", "#elseif", "#else"}:
        return False
    if _directive_kind(after) not in {"#endif", "#else", "#elseif"}:
        return False
    # Whatever the clauses, a declaration must follow the closing directive(s).
    following = after
    while following is not None and (
        following.type in COMMENT_TYPES or _directive_kind(following) is not None
        or (following.is_error and all(c.type == "attribute" for c in following.children))
    ):
        following = following.next_sibling
    return (
        following is not None
        and not following.has_error
        and following.type.endswith("_declaration")
    )


def _void_closure(node) -> bool:
    """The closure `{ () }`; see the module doc."""
    parent = node.parent
    return (
        parent is not None
        and parent.type == "lambda_literal"
        and re.sub(rb"\s+", b"", parent.text) == b"{()}"
        and [c.type for c in node.children] == ["lambda_function_type"]
    )


ALLOWANCES = (("attribute-in-#if", _attribute_in_if), ("void-closure", _void_closure))


def _allowance(node) -> str | None:
    if not node.is_error or node.is_missing:
        return None
    for name, accepts in ALLOWANCES:
        if accepts(node):
            return name
    return None


def check_file(parser: tree_sitter.Parser, path: Path, allow_gaps: bool = True) -> FileResult:
    source = path.read_bytes()
    tree = parser.parse(source)
    result = FileResult(path)
    lines = source.decode("utf-8", errors="replace").splitlines()

    # Iterative pre-order walk: the generated bindings are deep enough in
    # places that recursion would be a needless risk.
    cursor = tree.walk()
    while True:
        node = cursor.node
        descend = True
        kind = None
        allowed = _allowance(node) if allow_gaps else None
        if allowed is not None:
            result.allowed[allowed] = result.allowed.get(allowed, 0) + 1
            descend = False  # its insides were checked by the allowance itself
        elif node.is_missing:
            kind = f"MISSING {node.type!r}"
        elif node.is_error:
            kind = "ERROR"
        if kind is not None:
            result.count += 1
            if len(result.problems) < MAX_REPORTED:
                row, col = node.start_point
                text = lines[row].strip() if row < len(lines) else ""
                result.problems.append(f"{row + 1}:{col + 1}: {kind} near `{text[:80]}`")
        if descend and cursor.goto_first_child():
            continue
        while not cursor.goto_next_sibling():
            if not cursor.goto_parent():
                break
        else:
            continue
        break

    # Belt and braces: has_error covers every kind of error tree-sitter records.
    if result.count == 0 and not result.allowed and tree.root_node.has_error:
        result.count = 1
        result.problems.append("tree-sitter reports an error that no ERROR/MISSING node carries")
    return result


def collect(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        if p.is_file():
            files.append(p)
            continue
        if not p.is_dir():
            print(f"check_swift_parse: no such file or directory: {p}", file=sys.stderr)
            continue
        for dirpath, dirnames, filenames in os.walk(p):
            dirnames[:] = sorted(
                d for d in dirnames if d not in SKIPPED_DIRS and not d.endswith(".xcframework")
            )
            files.extend(Path(dirpath) / f for f in sorted(filenames) if f.endswith(".swift"))
    return files


def versions() -> str:
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("tree-sitter", "tree-sitter-swift"):
        try:
            out.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            out.append(f"{dist} (unknown version)")
    return ", ".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--require", action="append", type=Path, default=[],
                    help="a file that must exist and be among the checked files")
    ap.add_argument("--expect-fail", action="store_true",
                    help="negative test: every given file must be rejected")
    ap.add_argument("--no-allowances", action="store_true",
                    help="report the known grammar gaps as errors too (to see them)")
    args = ap.parse_args(argv)

    parser = make_parser()

    if args.expect_fail:
        files = collect(args.paths)
        if not files:
            print("check_swift_parse: --expect-fail given no Swift files", file=sys.stderr)
            return 1
        accepted = []
        for path in files:
            result = check_file(parser, path, allow_gaps=not args.no_allowances)
            if result.ok:
                accepted.append(path)
                print(f"NOT REJECTED {path}  (the checker would let this broken file through)")
            else:
                print(f"rejected as expected {path}  ({result.problems[0]})")
        print(f"negative fixtures: {len(files) - len(accepted)} of {len(files)} rejected")
        return 1 if accepted else 0

    paths = args.paths or [Path("bindings/TokenKeeper")]
    files = collect(paths)
    print(f"check_swift_parse: {versions()}")

    missing = [r for r in args.require if not r.is_file()]
    for r in missing:
        print(f"MISSING FILE {r}  (required; for the generated bindings run scripts/generate-bindings.sh)")
    checked = {f.resolve() for f in files}
    for r in args.require:
        if r.is_file() and r.resolve() not in checked:
            missing.append(r)
            print(f"NOT CHECKED {r}  (required but outside the checked paths)")

    passed = failed = 0
    for path in files:
        result = check_file(parser, path, allow_gaps=not args.no_allowances)
        if result.ok:
            passed += 1
            note = ", ".join(f"{n} {name}" for name, n in sorted(result.allowed.items()))
            print(f"ok   {path}" + (f"  (known grammar gaps accepted: {note})" if note else ""))
        else:
            failed += 1
            print(f"FAIL {path}: {result.count} syntax problem(s)")
            for problem in result.problems:
                print(f"       {path}:{problem}")
            if result.count > len(result.problems):
                print(f"       … and {result.count - len(result.problems)} more")

    failed += len(missing)
    if not files:
        print("check_swift_parse: no .swift files found under " + ", ".join(map(str, paths)))
        failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
