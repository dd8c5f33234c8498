"""Robustness suite of issue 10: fuzzing, hostile inputs, the access matrix, faults (``make test``); ``soak.py``
drives the load run of ``make soak``. See docs/robustness.md."""
