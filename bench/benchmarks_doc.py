"""The "OGC API et tuiles" section of ``docs/benchmarks.md``: tables, machine, versions, command.

Only that section is rewritten; any other section of the file (e.g. "Rapport près de chez vous") stays.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

SECTION = "## OGC API et tuiles"


def machine() -> dict[str, str]:
    cpu = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    load = os.getloadavg()
    return {"nproc": str(os.cpu_count()), "memory": f"{mem_kb / 1024 / 1024:.1f} Gio", "cpu": cpu,
            "system": f"{platform.system()} {platform.release()}",
            "load": f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}"}


def tool_version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else "?"


def _fmt(value: float, digits: int = 1) -> str:
    """French number: thin space between thousands, decimal comma (1 234,5)."""
    return f"{value:,.{digits}f}".replace(",", "\u202f").replace(".", ",")


def results_table(results: dict[str, dict[str, dict]], servers: list[str]) -> list[str]:
    """One row per case and server: requests/s, p50, p99, errors, mean bytes per response (wrk, gzip asked)."""
    lines = ["| cas | serveur | req/s | p50 (ms) | p99 (ms) | erreurs | octets / réponse |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for case, by_server in results.items():
        for name in servers:
            r = by_server.get(name)
            if r is None:  # pygeoapi has no tiles; the uncached service and the floor only run some cases
                if name == "pygeoapi":
                    lines.append(f"| {case} | {name} | — | — | — | — | sans tuiles |")
                continue
            size = _fmt(r["mean_bytes"], 0) if "mean_bytes" in r else "—"
            errors = str(r.get("errors", 0))
            lines.append(f"| {case} | {name} | {_fmt(r['requests_per_s'])} | {_fmt(r['p50_ms'], 2)} | "
                         f"{_fmt(r['p99_ms'], 2)} | {errors} | {size} |")
    return lines


UNCACHED = "geo-service sans cache"


def target_ratio(case: str) -> float:
    """The issue's throughput target against tipg: 3× on the pan-and-zoom trace, 2× everywhere else."""
    return 3.0 if case.startswith("trace_") else 2.0


def targets_table(results: dict[str, dict[str, dict]]) -> list[str]:
    """Each case against the targets: throughput ≥ 2× tipg's (3× on the trace), p99 ≤ tipg's, and uniform boxes
    ≥ 0.5× the raw-SQL floor. Random tiles are judged on the service with its tile cache off (each tile rendered:
    the list is short enough that, cached, wrk would soon be served from memory only)."""
    lines = ["| cas | débit / tipg | cible | p99 geo-service (ms) | p99 tipg (ms) | p99 ≤ tipg | "
             "débit / plancher SQL | cible ≥ 0,5 |",
             "|---|---:|:---:|---:|---:|:---:|---:|:---:|"]

    def yes(ok: bool) -> str:
        return "oui" if ok else "**non**"

    for case, by_server in results.items():
        ours = by_server.get(UNCACHED) if case.startswith("tile_z") else None
        ours = ours or by_server.get("geo-service", {})
        tipg = by_server.get("tipg")
        floor = by_server.get("plancher SQL")
        cells = ["—"] * 7
        if ours and tipg and tipg.get("requests_per_s"):
            ratio = ours["requests_per_s"] / tipg["requests_per_s"]
            cells[0:2] = [_fmt(ratio, 2), f"≥ {target_ratio(case):g} : {yes(ratio >= target_ratio(case))}"]
            cells[2:5] = [_fmt(ours["p99_ms"], 1), _fmt(tipg["p99_ms"], 1), yes(ours["p99_ms"] <= tipg["p99_ms"])]
        if ours and floor and floor.get("requests_per_s"):
            ratio = ours["requests_per_s"] / floor["requests_per_s"]
            cells[5] = _fmt(ratio, 2)
            cells[6] = yes(ratio >= 0.5) if case == "items_bbox" else "—"
        label = f"{case} (sans cache)" if case.startswith("tile_z") and UNCACHED in by_server else case
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def write_section(doc: Path, body: str) -> None:
    """Replace (or append) the section in ``doc``, leaving the other sections as they are."""
    text = doc.read_text(encoding="utf-8") if doc.exists() else "# Benchmarks\n"
    section = f"{SECTION}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section + "\n", text, count=1)
    else:
        text = text.rstrip() + "\n\n" + section
    doc.write_text(text.rstrip() + "\n", encoding="utf-8")
