#!/usr/bin/env python3
"""Largest source files and functions outside tests (issue 14's measure).

  scripts/code-sizes.py [REPO_DIR]

Files: *.cpp and *.hpp under runtime/ actors/ models/ cli/ schemas/.
Functions: definitions that start at column 0 (free functions and
out-of-class members; a lambda counts for the function it is in), from
their first signature line to the closing brace at column 0.
"""
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
files = sorted(p for d in ("runtime", "actors", "models", "cli", "schemas")
               for p in (root / d).rglob("*") if p.suffix in (".cpp", ".hpp"))
not_fn = re.compile(r"^(namespace|struct|class|enum|union|using|typedef|template|extern|#|//|/\*|\}|static_assert)")
sizes, fns = [], []
for p in files:
    lines = p.read_text(errors="replace").split("\n")
    rel = p.relative_to(root)
    sizes.append((len(lines) - (lines[-1] == ""), str(rel)))
    i = 0
    while i < len(lines):
        line = lines[i]
        if line and not line[0].isspace() and not not_fn.match(line) and "(" in line:
            j = i
            while j < len(lines) and not lines[j].rstrip().endswith("{") and ";" not in lines[j]:
                j += 1
            if j < len(lines) and lines[j].rstrip().endswith("{") and ";" not in lines[j]:
                k = j + 1
                while k < len(lines) and lines[k].rstrip() != "}":
                    k += 1
                name = re.search(r"([\w:~]+)\s*\(", line)
                fns.append((k - i + 1, f"{rel}:{i + 1} {name.group(1) if name else line[:40]}"))
                i = k + 1
                continue
        i += 1
print("largest files (lines):")
for n, f in sorted(sizes, reverse=True)[:5]:
    print(f"  {n:5d}  {f}")
print("largest functions (lines):")
for n, f in sorted(fns, reverse=True)[:5]:
    print(f"  {n:5d}  {f}")
