/* /admin mini maps: the published geometry (grey) and the proposed one (blue), over the EPCI outlines.
   Geometries come from data-before / data-after (GeoJSON written by the server), over the configured base map. */
(function () {
  "use strict";
  function parse(el, name) {
    var raw = el.getAttribute("data-" + name);
    if (!raw || raw === "null") { return null; }
    try { return JSON.parse(raw); } catch (e) { return null; }
  }
  function layerOf(geometry, colour) {
    return L.geoJSON({ type: "Feature", geometry: geometry, properties: {} }, {
      style: { color: colour, weight: 3, fillOpacity: 0.2 },
      pointToLayer: function (f, latlng) {
        return L.circleMarker(latlng, { radius: 8, color: colour, weight: 3, fillOpacity: 0.6 });
      }
    });
  }
  document.querySelectorAll(".admin-map").forEach(function (el) {
    var map = L.map(el, { scrollWheelZoom: false });
    // basemap.js (loaded before this script by the pages with a map): the configured plan, if any.
    var streets = window.lotBasemap ? window.lotBasemap.addTo(map, false) : false;
    var base = el.getAttribute("data-base") || "";
    fetch(base + "/api/layers/epci").then(function (r) { return r.ok ? r.json() : null; }).then(function (fc) {
      if (fc) {
        L.geoJSON(fc, { style: { color: "#6a3d9a", weight: 1, fill: false }, interactive: false }).addTo(map);
      }
    });
    var group = L.featureGroup();
    var before = parse(el, "before"), after = parse(el, "after");
    if (before) { layerOf(before, "#666666").addTo(group); }
    if (after) { layerOf(after, "#000091").addTo(group); }
    group.addTo(map);
    if (group.getLayers().length) {
      map.fitBounds(group.getBounds().pad(0.5), { maxZoom: streets ? 17 : 11 });
    } else {
      map.setView([44.6, 1.6], 8);
    }
  });
})();
