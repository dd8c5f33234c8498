"""Counts of reports for the observatory (``/api/reports/stats``): by status, category and commune, nothing else.

A count is all that leaves: no text, no point, no date finer than the report's existence, no personal data.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from geo_service.services.reports.report_categories import BY_CODE, STATUS_LABELS


def stats(conn: Connection) -> dict:
    by_status = dict(conn.execute(text("SELECT status, count(*) FROM reports GROUP BY status")).all())
    by_category = dict(conn.execute(text("SELECT category, count(*) FROM reports GROUP BY category")).all())
    communes = conn.execute(text(
        "SELECT r.code_insee, max(c.nom_actuel), count(*) FROM reports r "
        "LEFT JOIN LATERAL (SELECT nom_actuel FROM communes WHERE code_insee_actuel = r.code_insee LIMIT 1) c "
        "ON true GROUP BY r.code_insee ORDER BY count(*) DESC, r.code_insee")).all()
    return {
        "total": sum(by_status.values()),
        "by_status": [{"status": s, "label": label, "count": by_status.get(s, 0)}
                      for s, label in STATUS_LABELS.items()],
        "by_category": [{"category": code, "label": c.label, "count": by_category.get(code, 0)}
                        for code, c in BY_CODE.items()],
        "by_commune": [{"code_insee": code, "nom": name, "count": n} for code, name, n in communes],
    }
