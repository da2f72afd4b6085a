#!/usr/bin/env python3
"""The module graph of src/ (who names whom through `crate::`), drawn at the
level of the crate's top-level modules and, inside each of them, of its
direct submodules; prints every cycle and exits 1 if there is one.

A module's file is src/<a>.rs or src/<a>/mod.rs (top level <a>), and
src/<a>/<b>.rs or src/<a>/<b>/... (submodule <a>::<b>). Paths count in
every form (`crate::a::b`, `use crate::{a, b::c}`, `super::x`); comments
and test code (`#[cfg(test)] mod tests` to the end of the file, or
tests.rs) do not. A submodule naming its parent module's own items (the
parent's mod.rs) is not an edge: the parent owns its children."""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(rel):
    parts = rel[:-3].split(os.sep)
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def code_of(path):
    text = open(path, encoding="utf-8").read()
    cut = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests", text, re.M)
    text = text[: cut.start()] if cut else text
    # Comments name modules without using them; `//` inside a string
    # literal ("http://…") is not a comment.
    return "\n".join(strip_comment(line) for line in text.split("\n"))


def strip_comment(line):
    in_string = False
    i = 0
    while i < len(line):
        c = line[i]
        if c == "\\" and in_string:
            i += 2
            continue
        if c == '"':
            in_string = not in_string
        elif not in_string and line.startswith("//", i):
            return line[:i]
        i += 1
    return line


def paths(code, root):
    """Every `root::a::b` path, `use root::{a, b::{c}}` groups expanded, as
    lists of segments after `root`."""
    out = []
    for m in re.finditer(r"\b" + root + r"::", code):
        rest = code[m.end():]
        if rest.startswith("{"):
            depth, j = 0, 0
            for j, ch in enumerate(rest):
                depth += ch == "{"
                depth -= ch == "}"
                if depth == 0:
                    break
            for item in re.split(r"[,{}\s]+", rest[1:j]):
                if item and re.match(r"\w", item):
                    out.append(item.split("::"))
            # Nested groups: `a::{b, c}` gives `a` above; that is the module.
        else:
            word = re.match(r"(\w+)", rest)
            if word:
                out.append([word.group(1)])
    return out


edges = {}
for root, _, files in os.walk(SRC):
    for name in files:
        if not name.endswith(".rs") or name == "tests.rs":
            continue
        path = os.path.join(root, name)
        parts = module_of(os.path.relpath(path, SRC))
        if parts in (["main"], ["lib"]):
            continue
        code = code_of(path)
        # Top level: crate::<b>. Inside the top-level module <a>: crate::<a>::<b>
        # and super::<b> from a submodule.
        here = parts[0]
        for segments in paths(code, "crate"):
            target = segments[0]
            if target != here and target not in ("self", "super"):
                edges.setdefault(here, set()).add(target)
        if len(parts) >= 2:
            sub = here + "::" + parts[1]
            refs = [seg[1] for seg in paths(code, "crate") if seg[0] == here and len(seg) > 1]
            if len(parts) == 2:
                refs += [seg[0] for seg in paths(code, "super")]
            for target in refs:
                if os.path.exists(os.path.join(SRC, here, target + ".rs")) or os.path.isdir(
                    os.path.join(SRC, here, target)
                ):
                    if target != parts[1]:
                        edges.setdefault(sub, set()).add(here + "::" + target)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in edges.get(v, ()):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        comp = []
        while True:
            w = stack.pop()
            on.discard(w)
            comp.append(w)
            if w == v:
                break
        if len(comp) > 1:
            sccs.append(sorted(comp))


sys.setrecursionlimit(10000)
for v in sorted(set(edges) | {w for ws in edges.values() for w in ws}):
    if v not in index:
        visit(v)
for comp in sccs:
    inner = [f"{a} -> {b}" for a in comp for b in sorted(edges.get(a, ())) if b in comp]
    print("cycle: " + ", ".join(inner))
if "--dot" in sys.argv:
    print("digraph modules {")
    for a in sorted(edges):
        for b in sorted(edges[a]):
            print(f'  "{a}" -> "{b}";')
    print("}")
sys.exit(1 if sccs else 0)
