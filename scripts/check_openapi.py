#!/usr/bin/env python3
"""Checks that docs/openapi.json documents every HTTP route Chorus serves, and nothing it does not.

Stdlib only. Routes come from:
  * chat/src/http/mod.rs — every `.route("...", get(..).post(..))`, with the prefix of the `.nest("/api/v1", api)`
    the router it belongs to is nested under;
  * the binary's routers (src/server.rs, src/admin.rs, src/web.rs, signaling/src/lib.rs) when present, plus a
    fixed list of the binary's routes (so a route cannot vanish from the document even if a file moves).
axum's `{param}` is OpenAPI's syntax; a wildcard `{*rest}` is documented as `{rest}`.

Also checks: path parameters declared match each path template, operationIds are unique snake_case, every
operation has responses. Exits 1 listing every problem; 0 (and a one-line summary) when the document is in step.

Usage: python3 scripts/check_openapi.py [--root DIR]
"""

import json
import os
import re
import sys

HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head", "options", "trace")

# Routes served by the binary outside chat's router (kept even if the source files below move).
BINARY_ROUTES = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/api/openapi.json"),
    ("GET", "/api/v1/admin/stats"),
    ("GET", "/admin"),
    ("GET", "/gateway"),
    ("GET", "/voice"),
]

# Router sources: file → (required?, whether it is the chat router with a nested API).
SOURCES = [
    ("chat/src/http/mod.rs", True),
    ("src/server.rs", False),
    ("src/admin.rs", False),
    ("src/web.rs", False),
    ("signaling/src/lib.rs", False),
]


def strip_comments(src):
    """Removes // and /* */ comments, keeping string literals intact."""
    out, i, n = [], 0, len(src)
    while i < n:
        c = src[i]
        if c == '"':
            j = skip_string(src, i)
            out.append(src[i:j])
            i = j
        elif src.startswith("//", i):
            while i < n and src[i] != "\n":
                i += 1
        elif src.startswith("/*", i):
            end = src.find("*/", i + 2)
            i = n if end < 0 else end + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def skip_string(src, i):
    """Index just past the string literal starting at src[i] == '"'."""
    i += 1
    while i < len(src):
        if src[i] == "\\":
            i += 2
            continue
        if src[i] == '"':
            return i + 1
        i += 1
    return i


def balanced_end(src, i, stop=None):
    """From src[i] (an opening bracket, or any char when `stop` is given) to the index of its matching close
    bracket, or of the first `stop` char at depth 0."""
    depth = 0
    while i < len(src):
        c = src[i]
        if c == '"':
            i = skip_string(src, i)
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0 and stop is None:
                return i
            if depth < 0:
                return i
        elif stop is not None and c == stop and depth == 0:
            return i
        i += 1
    return i


def routes_in(src):
    """[(start offset, path, [METHODS])] for every `.route("path", methods)` in src."""
    found = []
    for m in re.finditer(r"\.route\(\s*\"([^\"]+)\"\s*,", src):
        open_paren = m.start() + len(".route")
        close = balanced_end(src, open_paren)
        expr = src[m.end():close]
        methods = sorted({x.upper() for x in re.findall(r"\b(" + "|".join(HTTP_METHODS) + r")\s*\(", expr)})
        methods += sorted({x.upper() for x in re.findall(r"MethodFilter::([A-Z]+)", expr)})
        if re.search(r"\bany\s*\(", expr):
            methods.append("ANY")
        found.append((m.start(), m.group(1), methods))
    return found


def extract(path):
    """Routes of one router source file: [(METHOD, openapi_path)], and problems."""
    src = strip_comments(open(path, encoding="utf-8").read())
    problems = []
    # Router variables nested under a prefix: `.nest("/api/v1", api)`.
    prefixes = {var: prefix for prefix, var in re.findall(r"\.nest\(\s*\"([^\"]*)\"\s*,\s*(\w+)\s*\)", src)}
    # The extent of each `let var = ...;` statement, to know which router a `.route` belongs to.
    extents = []
    for m in re.finditer(r"\blet\s+(?:mut\s+)?(\w+)\s*(?::[^=]+)?=", src):
        end = balanced_end(src, m.end(), stop=";")
        extents.append((m.start(), end, m.group(1)))
    out = []
    for offset, route, methods in routes_in(src):
        prefix = ""
        for start, end, var in extents:
            if start <= offset < end and var in prefixes:
                prefix = prefixes[var]
        full = (prefix + route) if route != "/" or not prefix else prefix
        full = re.sub(r"\{\*(\w+)\}", r"{\1}", full)
        if not methods:
            problems.append(f"{path}: could not read the methods of route {full!r}")
        for meth in methods:
            out.append((meth, full))
    return out, problems


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if "--root" in sys.argv:
        root = sys.argv[sys.argv.index("--root") + 1]
    doc_path = os.path.join(root, "docs", "openapi.json")
    problems = []
    try:
        with open(doc_path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        print(f"check_openapi: cannot load {doc_path}: {e}", file=sys.stderr)
        return 1

    served = set(BINARY_ROUTES)
    for rel, required in SOURCES:
        p = os.path.join(root, rel)
        if not os.path.exists(p):
            if required:
                problems.append(f"router source {rel} not found")
            continue
        routes, probs = extract(p)
        problems += probs
        if required and not routes:
            problems.append(f"no routes found in {rel} (has the router syntax changed?)")
        served.update(routes)

    paths = doc.get("paths") or {}
    documented = set()
    for path, item in paths.items():
        for meth in HTTP_METHODS:
            if meth in item:
                documented.add((meth.upper(), path))

    for meth, path in sorted(served, key=lambda r: (r[1], r[0])):
        if meth == "ANY":
            if not any(p == path for _, p in documented):
                problems.append(f"missing from the document: {path} (any method)")
        elif (meth, path) not in documented:
            problems.append(f"missing from the document: {meth} {path}")
    for meth, path in sorted(documented - served, key=lambda r: (r[1], r[0])):
        if (("ANY", path)) not in served:
            problems.append(f"documented but not served: {meth} {path}")

    # Operation sanity: ids, responses, path parameters.
    params = (doc.get("components") or {}).get("parameters") or {}

    def resolve(p):
        r = p.get("$ref")
        if r and r.startswith("#/components/parameters/"):
            return params.get(r.rsplit("/", 1)[1], {})
        return p

    seen_ids = {}
    for path, item in paths.items():
        template = set(re.findall(r"\{(\w+)\}", path))
        common = [resolve(p) for p in item.get("parameters", [])]
        for meth in HTTP_METHODS:
            op = item.get(meth)
            if op is None:
                continue
            where = f"{meth.upper()} {path}"
            oid = op.get("operationId")
            if not oid or not re.fullmatch(r"[a-z][a-z0-9_]*", oid):
                problems.append(f"{where}: operationId missing or not snake_case ({oid!r})")
            elif oid in seen_ids:
                problems.append(f"{where}: operationId {oid!r} also used by {seen_ids[oid]}")
            else:
                seen_ids[oid] = where
            if not op.get("responses"):
                problems.append(f"{where}: no responses")
            declared = {
                p.get("name") for p in common + [resolve(p) for p in op.get("parameters", [])] if p.get("in") == "path"
            }
            if declared != template:
                problems.append(
                    f"{where}: path parameters {sorted(declared)} do not match the template {sorted(template)}"
                )

    if problems:
        print(f"check_openapi: {doc_path} is out of step with the routers:", file=sys.stderr)
        for p in problems:
            print("  - " + p, file=sys.stderr)
        return 1
    print(f"check_openapi: ok — {len(served)} served routes, {len(documented)} documented operations")
    return 0


if __name__ == "__main__":
    sys.exit(main())
