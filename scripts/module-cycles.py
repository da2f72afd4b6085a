#!/usr/bin/env python3
"""The module graph of src/ (who names whom through `crate::`), drawn at the
level of the crate's top-level modules and, inside each of them, of its
direct submodules; prints every cycle and exits 1 if there is one.

A module's file is src/<a>.rs or src/<a>/mod.rs (top level <a>), and
src/<a>/<b>.rs or src/<a>/<b>/... (submodule <a>::<b>). Test code
(`#[cfg(test)] mod tests` to the end of the file, or tests.rs) is not part
of the graph."""
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
    # Comments name modules without using them.
    return re.sub(r"//[^\n]*", "", text)


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
        for target in re.findall(r"\bcrate::(\w+)", code):
            if target != here:
                edges.setdefault(here, set()).add(target)
        if len(parts) >= 2:
            sub = here + "::" + parts[1]
            refs = re.findall(r"\bcrate::" + here + r"::(\w+)", code)
            refs += re.findall(r"\bsuper::(\w+)", code) if len(parts) == 2 else []
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
