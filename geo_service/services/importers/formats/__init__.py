"""One module per kind of open-data file (ARCEP, ANFR, BAN, national schemas, generic mapping), each
exporting ``KIND``; this package lists them by import, in the order of ``geo-service import --list``."""

from geo_service.services.importers.formats import (
    anfr,
    arcep_couverture,
    arcep_dcc,
    arcep_immeubles,
    arcep_mci,
    arcep_sites,
    ban,
    france_services,
    generic,
    mednum,
    tiers_lieux,
)

KINDS = {module.KIND.name: module.KIND for module in (
    arcep_immeubles, arcep_mci, arcep_sites, arcep_couverture, arcep_dcc, anfr, ban, mednum, france_services,
    tiers_lieux, generic)}
