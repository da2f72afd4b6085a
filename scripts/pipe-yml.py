#!/usr/bin/env python3
"""Regenerates pipe.yml's `variables:` from src/variables.rs (the one source);
tests/e2e/docs.rs fails when they disagree."""
import json, pathlib, re

root = pathlib.Path(__file__).resolve().parent.parent
src = (root / "src/variables.rs").read_text()
variables = re.findall(r'var\(\s*"([A-Z_]+)",\s*"((?:[^"\\]|\\.)*)",\s*"((?:[^"\\]|\\.)*)",?\s*\)', src)
pipe = root / "pipe.yml"
text = pipe.read_text()
out = text[: text.index("variables:\n") + len("variables:\n")]
for name, default, desc in variables:
    out += f"  - name: {name}\n    description: {json.dumps(desc)}\n    required: false\n"
    if default:
        out += f"    default: {json.dumps(default)}\n"
pipe.write_text(out)
