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
            if r is None:
                lines.append(f"| {case} | {name} | — | — | — | — | sans tuiles |")
                continue
            size = _fmt(r["mean_bytes"], 0) if "mean_bytes" in r else "—"
            errors = str(r.get("errors", 0))
            lines.append(f"| {case} | {name} | {_fmt(r['requests_per_s'])} | {_fmt(r['p50_ms'], 2)} | "
                         f"{_fmt(r['p99_ms'], 2)} | {errors} | {size} |")
    return lines


def targets_table(results: dict[str, dict[str, dict]]) -> list[str]:
    """Our throughput against tipg's (target ≥ 1) and against the raw-SQL floor (target ≥ 1/1.5)."""
    lines = ["| cas | geo-service / tipg | cible ≥ 1 | geo-service / plancher SQL | cible ≥ 0,67 |",
             "|---|---:|:---:|---:|:---:|"]
    for case, by_server in results.items():
        ours = by_server.get("geo-service", {}).get("requests_per_s", 0.0)
        cells = []
        for other, target in (("tipg", 1.0), ("plancher SQL", 1 / 1.5)):
            theirs = by_server.get(other, {}).get("requests_per_s")
            if not theirs:
                cells += ["—", "—"]
                continue
            ratio = ours / theirs
            cells += [f"{ratio:.2f}".replace(".", ","), "oui" if ratio >= target else "**non**"]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
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
