/* /observatory: draws the choropleth map (Leaflet) from the simplified outlines the service serves, coloured with
   the classes the server computed (data-values: code → [colour, value in words]), and sorts the table in place
   when a header's button is pressed (without JavaScript the same buttons ask the server, ?sort=…&order=…).
   Nothing here computes a class or a value: the legend, the table and the map say the server's figures. */
(function () {
  "use strict";

  function drawMap(element) {
    var values = JSON.parse(element.getAttribute("data-values") || "{}");
    var epci = element.getAttribute("data-epci");
    var map = L.map(element, { scrollWheelZoom: false, zoomSnap: 0.25 });
    window.lotBasemap.addTo(map, false);
    map.attributionControl.setPrefix(false);
    fetch(element.getAttribute("data-areas"), { headers: { Accept: "application/geo+json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("contours indisponibles (" + response.status + ")"); }
        return response.json();
      })
      .then(function (collection) {
        var features = collection.features.filter(function (f) {
          return !epci || f.properties.epci === epci;
        });
        var layer = L.geoJSON({ type: "FeatureCollection", features: features }, {
          style: function (feature) {
            var found = values[feature.properties.code];
            return { color: "#4d4d4d", weight: 0.7, fillOpacity: 0.85, fillColor: found ? found[0] : "#d9d9d9" };
          },
          onEachFeature: function (feature, shape) {
            var found = values[feature.properties.code];
            var words = document.createElement("span");
            words.textContent = feature.properties.name + " : " + (found ? found[1] : "sans valeur");
            shape.bindTooltip(words, { sticky: true });
          }
        }).addTo(map);
        if (features.length) { map.fitBounds(layer.getBounds(), { padding: [8, 8] }); }
        element.setAttribute("data-drawn", String(features.length));
      })
      .catch(function (error) {
        var note = document.createElement("p");
        note.className = "obs-problem";
        note.textContent = "La carte n'a pas pu être dessinée : " + error.message + ". Le tableau donne les valeurs.";
        element.parentNode.insertBefore(note, element.nextSibling);
        element.setAttribute("data-drawn", "erreur");
      });
  }

  function compare(key, a, b) {
    if (key === "valeur") {
      var x = a.getAttribute("data-value"), y = b.getAttribute("data-value");
      if (x === "" || y === "") { return (x === "") - (y === ""); }
      return parseFloat(x) - parseFloat(y) || a.getAttribute("data-name").localeCompare(b.getAttribute("data-name"), "fr");
    }
    if (key === "code") { return a.getAttribute("data-code").localeCompare(b.getAttribute("data-code")); }
    return a.getAttribute("data-name").localeCompare(b.getAttribute("data-name"), "fr", { sensitivity: "base" });
  }

  function sortTable(table, key, order) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var found = compare(key, a, b);
      var empty = key === "valeur" && (a.getAttribute("data-value") === "" || b.getAttribute("data-value") === "");
      return order === "desc" && !empty ? -found : found;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    table.querySelectorAll("form.obs-sort").forEach(function (form) {
      var header = form.closest("th");
      var button = form.querySelector("button");
      var arrow = button.querySelector(".obs-sort__arrow");
      var hint = button.querySelector(".visually-hidden");
      var current = form.getAttribute("data-sort") === key;
      var next = current && order === "asc" ? "desc" : "asc";
      if (current) { header.setAttribute("aria-sort", order === "asc" ? "ascending" : "descending"); }
      else { header.removeAttribute("aria-sort"); }
      button.value = next;
      arrow.textContent = current ? (order === "asc" ? "▲" : "▼") : "⇅";
      hint.textContent = ", trier " + (next === "desc" ? "par ordre décroissant" : "par ordre croissant");
    });
    var url = new URL(window.location.href);
    url.searchParams.set("sort", key);
    url.searchParams.set("order", order);
    window.history.replaceState(null, "", url.pathname + url.search + "#tableau");
  }

  document.querySelectorAll("table[data-sortable]").forEach(function (table) {
    table.querySelectorAll("form.obs-sort").forEach(function (form) {
      form.addEventListener("submit", function (event) {
        event.preventDefault();
        var button = form.querySelector("button");
        sortTable(table, form.getAttribute("data-sort"), button.value);
        button.focus();
      });
    });
    table.setAttribute("data-sorting", "client");
  });

  var element = document.getElementById("obs-map");
  if (element && window.L) { drawMap(element); }
})();
