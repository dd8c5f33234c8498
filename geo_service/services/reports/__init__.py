"""Residents' reports (« Signaler un problème »): a resident tells the GIS officers what a layer gets wrong at a
place — the fibre state at their door, no mobile coverage, a Wi-Fi borne out of order, a place closed — without an
account, and follows the answer through a private link. ``submission`` takes a report in (abuse limits, duplicates),
``follow_up`` shows it to its reporter, ``report_queue`` lets officers and EPCI contributors (their perimeter, under
a convention in force: ``editing.rights``/``conventions``) change its status with a public answer, recorded in
``report_status_history``; ``notifications`` sends the e-mails, ``retention`` purges personal data, ``report_stats``
counts for the observatory, ``open311`` speaks GeoReport v2 and ``report_photos`` re-encodes photos.
"""
