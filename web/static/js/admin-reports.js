/* /admin/reports: the reports listed (data-reports, GeoJSON written by the server) on a map over the EPCI
   outlines, each point linking to its report; the base map only when one is configured. Texts with textContent. */
(function () {
  "use strict";
  var COLOURS = {new: "#e1000f", acknowledged: "#b34000", in_progress: "#000091", resolved: "#18753c",
                 not_reproducible: "#666666", duplicate: "#666666"};
  document.querySelectorAll(".admin-map--reports").forEach(function (el) {
    var map = L.map(el, { scrollWheelZoom: false });
    var streets = window.lotBasemap ? window.lotBasemap.addTo(map, false) : false;
    var base = el.getAttribute("data-base") || "";
    fetch(base + "/api/layers/epci").then(function (r) { return r.ok ? r.json() : null; }).then(function (fc) {
      if (fc) { L.geoJSON(fc, { style: { color: "#6a3d9a", weight: 1, fill: false }, interactive: false }).addTo(map); }
    });
    var data = JSON.parse(el.getAttribute("data-reports") || "null");
    var group = L.geoJSON(data, {
      pointToLayer: function (f, latlng) {
        var colour = COLOURS[f.properties.status] || "#000091";
        return L.circleMarker(latlng, { radius: 8, color: "#ffffff", weight: 2, fillColor: colour, fillOpacity: 1 });
      },
      onEachFeature: function (f, layer) {
        var link = document.createElement("a");
        link.href = base + "/admin/reports/" + encodeURIComponent(f.properties.id);
        link.textContent = f.properties.label;
        layer.bindPopup(link);
      }
    }).addTo(map);
    if (group.getLayers().length) {
      map.fitBounds(group.getBounds().pad(0.3), { maxZoom: streets ? 16 : 11 });
    } else {
      map.setView([44.6, 1.6], 8);
    }
    el.setAttribute("data-ready", "true");
  });
})();
