/* The /admin web editor: list and map of a layer's features, placing / moving with Leaflet-Geoman, and a form
   generated from the layer declaration (config in #editor[data-config]). Reads go through /admin/api/features,
   writes through the OGC API Part 4 with the session's CSRF token and If-Match: the server decides everything
   (rights, perimeter, checks); this script only shows its answers next to the fields. */
(function () {
  "use strict";
  var root = document.getElementById("editor");
  if (!root) { return; }
  var cfg = JSON.parse(root.getAttribute("data-config"));
  var csrf = root.getAttribute("data-csrf");
  var base = root.getAttribute("data-base") || "";
  var isPoint = cfg.geometry === "Point";
  var form = document.getElementById("editor-form");
  var statusBox = document.getElementById("editor-status");
  var errorBox = document.getElementById("editor-error");
  var list = document.getElementById("editor-list");
  var filters = document.getElementById("editor-filters");
  var deleteButton = document.getElementById("editor-delete");
  var which = document.getElementById("editor-which");
  var historyLink = document.getElementById("editor-history");
  var lon = document.getElementById("f-lon"), lat = document.getElementById("f-lat");
  var fields = cfg.fields;
  var current = null;

  var map = L.map("editor-map", { zoomControl: true }).setView([44.62, 1.65], 9);
  // The plan, and the aerial photographs to place a borne on the right façade (basemap.js; none if not configured).
  if (window.lotBasemap) { window.lotBasemap.addTo(map, true); }
  map.pm.setLang("fr");
  var features = L.featureGroup().addTo(map);

  fetch(base + "/api/layers/epci").then(function (r) { return r.ok ? r.json() : null; }).then(function (fc) {
    if (!fc) { return; }
    var outlines = L.geoJSON(fc, {
      interactive: false,
      style: function (f) {
        var mine = cfg.epci && f.properties && f.properties.siren === cfg.epci;
        return { color: mine ? "#000091" : "#6a3d9a", weight: mine ? 3 : 1, fill: false, pmIgnore: true };
      }
    }).addTo(map);
    outlines.eachLayer(function (l) {
      if (cfg.epci && l.feature.properties.siren === cfg.epci) { map.fitBounds(l.getBounds()); }
    });
  });

  function say(message) { statusBox.textContent = message || ""; }

  function clearErrors() {
    errorBox.hidden = true;
    errorBox.textContent = "";
    form.querySelectorAll(".admin-field__error").forEach(function (el) { el.hidden = true; el.textContent = ""; });
    form.querySelectorAll("[aria-invalid]").forEach(function (el) { el.removeAttribute("aria-invalid"); });
  }

  function showProblem(problem) {
    errorBox.textContent = problem.detail || problem.title || "Erreur";
    errorBox.hidden = false;
    var errors = problem.errors || (problem.field ? [{ field: problem.field, message: problem.detail }] : []);
    errors.forEach(function (e) {
      var target = document.getElementById("e-" + e.field);
      if (target) { target.textContent = e.message; target.hidden = false; }
      var input = document.getElementById("f-" + e.field) || (e.field === "geometry" ? lon : null);
      if (input) { input.setAttribute("aria-invalid", "true"); }
    });
  }

  function inputs(name) { return form.querySelectorAll('[name="' + name + '"]'); }

  function readValue(f) {
    var els = inputs(f.name);
    if (!els.length) { return undefined; }
    if (f.type === "string_list" && f.codes.length) {
      return Array.prototype.filter.call(els, function (e) { return e.checked; }).map(function (e) { return e.value; });
    }
    var el = els[0];
    if (f.type === "boolean") { return el.checked; }
    var raw = el.value.trim();
    if (raw === "") { return null; }
    if (f.type === "string_list") { return raw.split(",").map(function (s) { return s.trim(); }).filter(Boolean); }
    if (f.type === "integer" || f.type === "number") {
      var n = Number(raw);
      return isNaN(n) ? raw : n;
    }
    return raw;
  }

  function writeValue(f, value) {
    var els = inputs(f.name);
    if (!els.length) { return; }
    if (f.type === "string_list" && f.codes.length) {
      els.forEach(function (e) { e.checked = Array.isArray(value) && value.indexOf(e.value) >= 0; });
    } else if (f.type === "boolean") {
      els[0].checked = value === true;
    } else if (Array.isArray(value)) {
      els[0].value = value.join(", ");
    } else {
      els[0].value = value === null || value === undefined ? "" : String(value);
    }
  }

  function syncCoordinates(layer) {
    if (!isPoint || !layer || !layer.getLatLng) { return; }
    var ll = layer.getLatLng();
    lon.value = ll.lng.toFixed(7);
    lat.value = ll.lat.toFixed(7);
  }

  function editable(layer) {
    layer.pm.enable({ draggable: true, allowSelfIntersection: false });
    layer.on("pm:dragend pm:edit pm:markerdragend", function () { syncCoordinates(layer); });
  }

  function release() {
    if (current && current.layer && current.layer.pm) { current.layer.pm.disable(); }
    if (current && current.isNew && current.layer) { features.removeLayer(current.layer); }
  }

  function select(feature, layer) {
    release();
    clearErrors();
    current = { fid: feature.id, version: feature.properties._version, props: feature.properties, layer: layer,
                isNew: false, geometry: JSON.stringify(feature.geometry) };
    fields.forEach(function (f) { writeValue(f, feature.properties[f.name]); });
    which.textContent = "n° " + feature.id + (feature.properties._state !== "published" ? " (" + {
      proposed: "proposée, en attente", deleted: "supprimée" }[feature.properties._state] + ")" : "");
    deleteButton.disabled = feature.properties._state !== "published";
    historyLink.hidden = cfg.moderated;
    historyLink.href = base + "/admin/history/" + cfg.layer + "/" + feature.id;
    if (feature.properties._state === "published") { editable(layer); }
    syncCoordinates(layer);
  }

  function label(feature) {
    var name = cfg.labelField ? feature.properties[cfg.labelField] : null;
    return (name || "Entité") + " (n° " + feature.id + ")";
  }

  function render(fc) {
    features.clearLayers();
    list.innerHTML = "";
    L.geoJSON(fc, {
      pointToLayer: function (f, ll) { return L.marker(ll, { title: label(f), alt: label(f) }); },
      onEachFeature: function (f, layer) {
        layer.on("click", function () { select(f, layer); });
        features.addLayer(layer);
        var item = document.createElement("li");
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = label(f);
        button.addEventListener("click", function () {
          select(f, layer);
          if (layer.getLatLng) { map.setView(layer.getLatLng(), Math.max(map.getZoom(), 15)); }
          else { map.fitBounds(layer.getBounds()); }
          form.querySelector("input, select").focus();
        });
        item.appendChild(button);
        list.appendChild(item);
      }
    });
    // ?fid=N (the link of a resident's report in /admin/reports): that feature selected, the first time it shows.
    var wanted = parseInt(new URLSearchParams(window.location.search).get("fid"), 10);
    if (isFinite(wanted) && !render.opened) {
      features.eachLayer(function (layer) {
        if (layer.feature && layer.feature.id === wanted) {
          render.opened = true;
          select(layer.feature, layer);
          if (layer.getLatLng) { map.setView(layer.getLatLng(), Math.max(map.getZoom(), 15)); }
        }
      });
    }
    document.getElementById("editor-count").textContent =
      fc.numberReturned + " entité" + (fc.numberReturned > 1 ? "s" : "") +
      (fc.numberReturned >= fc.limit ? " (les plus récentes ; précisez la recherche)" : "");
  }

  function load() {
    var params = new URLSearchParams(new FormData(filters));
    params.set("limit", "500");
    if (map.getZoom() >= 12) { params.set("bbox", map.getBounds().toBBoxString()); }
    return fetch(base + "/admin/api/features/" + cfg.layer + "?" + params.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (res) { if (res.ok) { render(res.body); } else { showProblem(res.body); } });
  }

  function collect() {
    var props = {};
    fields.forEach(function (f) {
      var value = readValue(f);
      if (value !== undefined) { props[f.name] = value; }
    });
    return props;
  }

  function send(method, url, body, headers) {
    var h = Object.assign({ "X-CSRF-Token": csrf }, headers || {});
    return fetch(url, { method: method, credentials: "same-origin", headers: h,
                        body: body === undefined ? undefined : JSON.stringify(body) })
      .then(function (r) {
        if (r.status === 204) { return { status: 204, body: null }; }
        return r.json().then(function (b) { return { status: r.status, body: b }; });
      });
  }

  function answered(res, done) {
    if (res.status >= 400) { showProblem(res.body); return; }
    if (res.status === 202) {
      say("Proposition enregistrée : elle sera publiée après validation par le Département.");
    } else {
      say(done);
    }
    release();
    current = null;
    which.textContent = "—";
    form.reset();
    deleteButton.disabled = true;
    load();
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearErrors();
    say("");
    if (!current || !current.layer) {
      showProblem({ detail: "Choisissez une entité sur la carte ou la liste, ou créez-en une nouvelle.", field: "geometry" });
      return;
    }
    var url = base + "/ogc/collections/" + cfg.layer + "/items";
    var geometry = current.layer.toGeoJSON().geometry;
    if (current.isNew) {
      send("POST", url, { type: "Feature", geometry: geometry, properties: collect() },
           { "Content-Type": "application/geo+json" }).then(function (res) { answered(res, "Entité créée et publiée."); });
      return;
    }
    var changed = {}, props = collect();
    Object.keys(props).forEach(function (k) {
      if (JSON.stringify(props[k]) !== JSON.stringify(current.props[k] === undefined ? null : current.props[k])) {
        changed[k] = props[k];
      }
    });
    var patch = { properties: changed };
    if (JSON.stringify(geometry) !== current.geometry) { patch.geometry = geometry; }
    send("PATCH", url + "/" + current.fid, patch,
         { "Content-Type": "application/merge-patch+json", "If-Match": '"v' + current.version + '"' })
      .then(function (res) { answered(res, "Modification enregistrée et publiée."); });
  });

  deleteButton.addEventListener("click", function () {
    if (!current || current.isNew || !window.confirm("Supprimer cette entité ? (elle pourra être restaurée)")) { return; }
    clearErrors();
    send("DELETE", base + "/ogc/collections/" + cfg.layer + "/items/" + current.fid, undefined,
         { "If-Match": '"v' + current.version + '"' }).then(function (res) { answered(res, "Entité supprimée."); });
  });

  document.getElementById("editor-new").addEventListener("click", function () {
    release();
    current = null;
    clearErrors();
    form.reset();
    which.textContent = "nouvelle";
    deleteButton.disabled = true;
    historyLink.hidden = true;
    map.pm.enableDraw(isPoint ? "Marker" : "Polygon", { allowSelfIntersection: false });
    say("Cliquez sur la carte pour placer la nouvelle entité" + (isPoint ? ", ou saisissez sa longitude et sa latitude." : "."));
  });

  map.on("pm:create", function (e) {
    map.pm.disableDraw();
    current = { isNew: true, layer: e.layer, props: {} };
    features.addLayer(e.layer);
    editable(e.layer);
    syncCoordinates(e.layer);
    say("Entité placée : remplissez le formulaire puis enregistrez.");
  });

  function moveTo() {
    var x = parseFloat(lon.value), y = parseFloat(lat.value);
    if (isNaN(x) || isNaN(y)) { return; }
    if (!current) {
      map.pm.disableDraw();
      var marker = L.marker([y, x]);
      features.addLayer(marker);
      current = { isNew: true, layer: marker, props: {} };
      editable(marker);
      which.textContent = "nouvelle";
    } else if (current.layer && current.layer.setLatLng) {
      current.layer.setLatLng([y, x]);
    }
    map.panTo([y, x]);
  }
  if (isPoint) {
    lon.addEventListener("change", moveTo);
    lat.addEventListener("change", moveTo);
  }

  filters.addEventListener("submit", function (event) { event.preventDefault(); load(); });
  var timer = null;
  map.on("moveend", function () {
    if (current) { return; }
    window.clearTimeout(timer);
    timer = window.setTimeout(load, 300);
  });
  load();
})();
