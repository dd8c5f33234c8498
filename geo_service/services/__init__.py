"""The domain, grouped by the surface each part serves: ``publish`` (what every reader gets), ``resident`` (the
« Services près de chez vous » report and map), ``editing`` (the one write path and its rights), ``importers``
(open data, bulk imports, boundaries) and ``demo``; shared below them, ``app_caches``, ``sql_build``,
``csv_safe`` and ``untrusted_json``. Services take a SQLAlchemy connection and plain arguments, own their SQL,
raise the errors of ``geo_service/errors.py`` and know nothing of HTTP (``tests/test_architecture.py``)."""
