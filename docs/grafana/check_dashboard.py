#!/usr/bin/env python3
"""Checks docs/grafana/attnet.json against a scrape of the node's /metrics.

    python3 docs/grafana/check_dashboard.py SCRAPE [DASHBOARD]

SCRAPE is the text of /metrics (Prometheus text format 0.0.4); DASHBOARD
defaults to attnet.json next to this script. Checks that:

- every attnet_* name in every expression (less a _bucket, _sum or _count
  suffix) is a metric family of the scrape (or one listed in EXTRA_FAMILIES);
- every attnet_* selector filters on instance=~"$instance";
- every panel and every target uses the ${datasource} variable;
- panel ids are unique, every panel (rows aside) has a description;
- gridPos rectangles lie within 24 columns and do not overlap.

Prints "ok: ..." and exits 0, or prints each problem and exits 1.
Standard library only.
"""
import json
import os
import re
import sys

# Families the dashboard may use that a scrape can lack (none: the node
# exports every family, histograms included, from its start).
EXTRA_FAMILIES = set()

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
INSTANCE = 'instance=~"$instance"'
NAME = re.compile(r"attnet_[a-z_]+")
SELECTOR = re.compile(r"(attnet_[a-z_]+)\s*(\{[^}]*\})?")
SUFFIXES = ("_bucket", "_sum", "_count")
GRID_WIDTH = 24


def families(scrape_text):
    """Metric family names of a text-format scrape: the # TYPE / # HELP
    names, and the sample names (histogram suffixes folded)."""
    names = set()
    for line in scrape_text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 3 and parts[1] in ("TYPE", "HELP"):
                names.add(parts[2])
            continue
        m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
        if m:
            names.add(strip_suffix(m.group(0)))
    return names


def strip_suffix(name):
    for s in SUFFIXES:
        if name.endswith(s):
            return name[: -len(s)]
    return name


def all_panels(panels):
    for p in panels:
        yield p
        # A collapsed row holds its panels itself.
        yield from all_panels(p.get("panels", []))


def check(dashboard, known):
    problems = []
    panels = list(all_panels(dashboard.get("panels", [])))
    if not panels:
        problems.append("dashboard has no panels")

    names = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    for var in ("datasource", "instance"):
        if var not in names:
            problems.append(f"templating lacks the ${var} variable")

    seen_ids = {}
    rects = []
    used = set()
    for p in panels:
        title = p.get("title", "?")
        pid = p.get("id")
        where = f"panel {pid} {title!r}"
        if pid is None:
            problems.append(f"{where}: no id")
        elif pid in seen_ids:
            problems.append(f"{where}: id {pid} also used by {seen_ids[pid]!r}")
        else:
            seen_ids[pid] = title

        if p.get("datasource") != DATASOURCE:
            problems.append(f"{where}: datasource is {p.get('datasource')!r}, "
                            f"not {DATASOURCE!r}")
        if p.get("type") != "row" and not str(p.get("description", "")).strip():
            problems.append(f"{where}: no description")

        g = p.get("gridPos")
        if not isinstance(g, dict) or not all(
                isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{where}: gridPos missing or not integers: {g!r}")
        else:
            if g["x"] < 0 or g["y"] < 0 or g["w"] <= 0 or g["h"] <= 0:
                problems.append(f"{where}: bad gridPos {g!r}")
            if g["x"] + g["w"] > GRID_WIDTH:
                problems.append(f"{where}: gridPos {g!r} wider than "
                                f"{GRID_WIDTH} columns")
            rects.append((where, g))

        targets = p.get("targets", [])
        if p.get("type") not in ("row", "text") and not targets:
            problems.append(f"{where}: no targets")
        for t in targets:
            twhere = f"{where} target {t.get('refId', '?')}"
            if t.get("datasource") != DATASOURCE:
                problems.append(f"{twhere}: datasource is "
                                f"{t.get('datasource')!r}, not {DATASOURCE!r}")
            expr = t.get("expr", "")
            if not expr.strip():
                problems.append(f"{twhere}: empty expr")
                continue
            for m in NAME.finditer(expr):
                family = strip_suffix(m.group(0))
                used.add(family)
                if family not in known:
                    problems.append(f"{twhere}: {m.group(0)} names no metric "
                                    f"family of the scrape")
            for m in SELECTOR.finditer(expr):
                labels = m.group(2) or ""
                if INSTANCE not in labels:
                    problems.append(f"{twhere}: {m.group(1)} is not filtered "
                                    f"by {INSTANCE}")

    for i, (wa, a) in enumerate(rects):
        for wb, b in rects[i + 1:]:
            if (a["x"] < b["x"] + b["w"] and b["x"] < a["x"] + a["w"]
                    and a["y"] < b["y"] + b["h"] and b["y"] < a["y"] + a["h"]):
                problems.append(f"{wa} {a!r} overlaps {wb} {b!r}")

    return problems, panels, used


def main(argv):
    if len(argv) not in (2, 3):
        print(f"usage: {argv[0]} SCRAPE [DASHBOARD]", file=sys.stderr)
        return 2
    scrape_path = argv[1]
    dash_path = argv[2] if len(argv) == 3 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "attnet.json")
    try:
        with open(scrape_path, encoding="utf-8") as f:
            known = families(f.read())
    except OSError as e:
        print(f"cannot read scrape {scrape_path}: {e}")
        return 1
    try:
        with open(dash_path, encoding="utf-8") as f:
            dashboard = json.load(f)
    except (OSError, ValueError) as e:
        print(f"cannot read dashboard {dash_path}: {e}")
        return 1
    if not any(n.startswith("attnet_") for n in known):
        print(f"{scrape_path} has no attnet_ metric families")
        return 1
    known |= EXTRA_FAMILIES

    problems, panels, used = check(dashboard, known)
    if problems:
        for p in problems:
            print(p)
        print(f"{len(problems)} problem(s) in {dash_path}")
        return 1
    rows = sum(1 for p in panels if p.get("type") == "row")
    unused = sorted(n for n in known if n.startswith("attnet_") and n not in used)
    print(f"ok: {len(panels) - rows} panels in {rows} rows, "
          f"{len(used)} metric families used"
          + (f"; not shown: {', '.join(unused)}" if unused else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
