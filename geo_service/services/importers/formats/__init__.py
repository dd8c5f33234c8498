"""One module per kind of open-data file (ARCEP, ANFR, BAN, national schemas, generic mapping), each
exporting ``KIND``; this package lists them by import, in the order of ``geo-service import --list``."""
