"""« Services près de chez vous »: the report for one point (fibre, mobile, white zones, Wi-Fi, places),
its sections and French wording, eligibility offers, opening hours, the geocoder, the map page model and
the embed options. Reads through publish (visibility rule, layer state); writes nothing but the
geocoder's derived index."""
