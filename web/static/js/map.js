/*
 * Resident map ("Services près de chez vous").
 *
 * The page (services/resident/map_page.py) renders the Leaflet map with Folium, the layer toggles and the legend, and a
 * JSON configuration derived from the layer declarations. This script fetches each layer's GeoJSON from
 * /api/layers/{id} when its toggle is on, draws it with the declared style, and keeps popups, hints, the demo
 * badge and the attribution in step. Nothing here names a layer: the declarations drive everything.
 *
 * Every value coming from the data is written with textContent (never innerHTML), so a feature property
 * such as "<img onerror=…>" is shown as text.
 *
 * The same script draws /map and /map/embed. The URL chooses the layers (layers=a,b) and the view
 * (lat, lon, zoom); window.lotMap lets resident.js (search, report, shareable URL) follow the layers shown.
 * A layer declared with style.toggle_by has one toggle per code ("white_zones:orange"), each drawing the features
 * of that code from the layer's one download; layers=white_zones names all of them.
 */
(function () {
  "use strict";

  var config = JSON.parse(document.getElementById("map-config").textContent);
  var map = window[config.mapName];
  var statusEl = document.getElementById("map-status");
  var hintEl = document.getElementById("map-hint");
  var badgeEl = document.getElementById("demo-badge");
  var NBSP = "\u00a0";
  var dateFormat = new Intl.DateTimeFormat("fr-FR", {day: "numeric", month: "long", year: "numeric", timeZone: "UTC"});
  var numberFormat = new Intl.NumberFormat("fr-FR", {maximumFractionDigits: 2});
  var params = new URLSearchParams(window.location.search);

  function t(key, fallback) {
    // Chrome texts in the page's language (the embed may be in English); the data stays in French.
    return (config.strings && config.strings[key]) || fallback;
  }

  // ---- small DOM helpers -------------------------------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function say(message) {
    // Polite live region: screen-reader users hear loading results and errors.
    if (statusEl) statusEl.textContent = message;
  }

  function codeMap(pairs) {
    var out = {};
    (pairs || []).forEach(function (pair) { out[String(pair[0])] = pair[1]; });
    return out;
  }

  // ---- map chrome in French ----------------------------------------------------------------------------

  L.control.zoom({zoomInTitle: t("zoomIn", "Zoomer"), zoomOutTitle: t("zoomOut", "Dézoomer")}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  map.on("popupopen", function (e) {
    var close = e.popup.getElement() && e.popup.getElement().querySelector(".leaflet-popup-close-button");
    if (close) {
      close.setAttribute("aria-label", t("closeCard", "Fermer la fiche"));
      close.setAttribute("title", t("closeCard", "Fermer la fiche"));
    }
  });

  // Dots shrink when the whole territory is in view, so hundreds of places stay readable.
  function markZoom() {
    var zoom = map.getZoom();
    var box = map.getContainer();
    box.classList.toggle("map--far", zoom < 11);
    box.classList.toggle("map--mid", zoom >= 11 && zoom < 13);
  }
  map.on("zoomend", markZoom);
  markZoom();

  // ---- sources: the attribution of every layer shown, as text, foldable on a phone ---------------------
  // Our own control rather than Leaflet's: Leaflet's takes HTML and drops a layer's attribution as soon as one
  // of its markers is removed (events bubble up from clustered markers), and it cannot fold on small screens.

  var sources = {};  // attribution text → number of shown layers citing it
  var sourcesList = el("ul", "map-sources__list");
  var Sources = L.Control.extend({
    options: {position: "bottomright"},
    onAdd: function () {
      var box = L.DomUtil.create("div", "leaflet-control-attribution map-sources");
      var details = el("details");
      details.appendChild(el("summary", "map-sources__title", t("sources", "Sources des données")));
      details.appendChild(sourcesList);
      details.open = !window.matchMedia("(max-width: 48em)").matches;
      box.appendChild(details);
      L.DomEvent.disableClickPropagation(box);
      L.DomEvent.disableScrollPropagation(box);
      return box;
    },
  });
  new Sources().addTo(map);

  function renderSources() {
    var items = Object.keys(sources).map(function (text) { return el("li", null, text); });
    items.push(el("li", null, t("mapping", "Cartographie : Leaflet")));
    sourcesList.replaceChildren.apply(sourcesList, items);
  }

  function cite(text, shown) {
    if (!text) return;
    sources[text] = (sources[text] || 0) + (shown ? 1 : -1);
    if (sources[text] <= 0) delete sources[text];
    renderSources();
  }

  if (config.basemapAttribution) cite(config.basemapAttribution, true);
  renderSources();

  // ---- fetching ----------------------------------------------------------------------------------------

  var wholeLayerCache = {};

  function fetchGeoJSON(url, signal) {
    return fetch(url, {signal: signal, headers: {Accept: "application/geo+json"}}).then(function (response) {
      if (!response.ok) throw new Error("HTTP " + response.status);
      return response.json();
    });
  }

  function fetchWhole(id) {
    // Background and toggle of one layer share a single download.
    if (!wholeLayerCache[id]) {
      wholeLayerCache[id] = fetchGeoJSON(config.api + "/" + encodeURIComponent(id)).catch(function (err) {
        delete wholeLayerCache[id];
        throw err;
      });
    }
    return wholeLayerCache[id];
  }

  function noteDemo(collection) {
    if (!badgeEl || !badgeEl.hidden) return;
    var demo = (collection.features || []).some(function (f) { return f.properties && f.properties.demo === true; });
    if (demo) badgeEl.hidden = false;
  }

  // ---- background drawn from our own boundary layers, over the base map when one is configured ------------
  // Without a base map (settings.map.basemap = none) the communes are the land; with one, outlines only, so the
  // streets stay readable.
  var landFill = !config.basemapAttribution;

  map.createPane("fond");
  map.getPane("fond").style.zIndex = 250;  // under overlays (400) and markers (600)
  config.background.forEach(function (bg, index) {
    fetchWhole(bg.id).then(function (data) {
      var first = index === 0;
      L.geoJSON(data, {
        pane: "fond", interactive: false,
        // The first boundary layer (communes) is the land; the next ones (EPCI) draw thicker outlines.
        style: {color: bg.color, weight: first ? 0.6 : 1.6, opacity: first ? 0.45 : 0.7,
                fill: first && landFill, fillColor: "#f7f4ec", fillOpacity: 1},
      }).addTo(map);
      cite(bg.attribution, true);
    }).catch(function () { say(t("backgroundFailed", "Le fond de carte n'a pas pu être chargé.")); });
  });

  // ---- feature styling and popups ---------------------------------------------------------------------

  function prepare(decl) {
    decl.colorOf = codeMap(decl.colors);
    decl.labelOf = codeMap(decl.labelCodes);
    decl.popup.forEach(function (f) { f.codeOf = f.codes ? codeMap(f.codes) : null; });
  }

  function colourOf(decl, props) {
    if (!decl.by) return decl.color;
    var value = props[decl.by];
    if (Array.isArray(value)) value = value[0];
    return decl.colorOf[String(value)] || decl.color;
  }

  function featureLabel(decl, props) {
    var value = decl.labelField ? props[decl.labelField] : null;
    if (value === null || value === undefined || value === "") return decl.title;
    return decl.labelOf[String(value)] || String(value);
  }

  function formatValue(field, value) {
    if (value === null || value === undefined || value === "") return null;
    var text;
    if (Array.isArray(value)) {
      if (!value.length) return null;
      text = value.map(function (v) { return field.codeOf ? (field.codeOf[String(v)] || String(v)) : String(v); })
        .join(", ");
    } else if (field.codeOf) {
      text = field.codeOf[String(value)] || String(value);
    } else if (field.type === "boolean") {
      text = value ? "Oui" : "Non";
    } else if (field.type === "date" || field.type === "datetime") {
      var date = new Date(field.type === "date" ? value + "T00:00:00Z" : value);
      text = isNaN(date) ? String(value) : dateFormat.format(date);
    } else if (typeof value === "number") {
      text = numberFormat.format(value);
    } else {
      text = String(value);
    }
    return field.unit ? text + NBSP + field.unit : text;
  }

  function popupContent(decl, props) {
    var root = el("div", "popup");
    root.appendChild(el("p", "popup__layer", decl.title));
    root.appendChild(el("h3", "popup__title", featureLabel(decl, props)));
    var list = el("dl", "popup__fields");
    decl.popup.forEach(function (field) {
      if (field.name === decl.labelField) return;  // already the heading
      var text = formatValue(field, props[field.name]);
      if (text === null) return;
      // Opening hours in words (map_page.hours_words), as the report says them; the OSM expression is data.
      if (field.hours && config.hoursWords && config.hoursWords[text]) text = config.hoursWords[text];
      var dd = el("dd");
      if (/^https?:\/\/\S+$/i.test(text)) {
        var link = el("a", null, text);
        link.href = text;  // only http(s): a "javascript:" value stays plain text
        link.rel = "noopener noreferrer";
        dd.appendChild(link);
      } else {
        dd.textContent = text;
      }
      list.appendChild(el("dt", null, field.label));
      list.appendChild(dd);
    });
    root.appendChild(list);
    if (props.demo === true) root.appendChild(el("p", "popup__demo", t("demoFeature", "Donnée de démonstration (fictive)")));
    return root;
  }

  function pointMarker(decl, feature, latlng) {
    var props = feature.properties || {};
    var dot = el("span", "geo-dot__fill");
    dot.style.background = colourOf(decl, props);
    dot.dataset.layer = decl.id;
    // Hidden text gives the keyboard-focusable marker (role=button) its accessible name.
    dot.appendChild(el("span", "visually-hidden", featureLabel(decl, props) + " (" + decl.title + ")"));
    var size = 2 * decl.radius + 4;
    return L.marker(latlng, {
      icon: L.divIcon({className: "geo-dot", html: dot, iconSize: [size, size]}),
      keyboard: true, riseOnHover: true,
    });
  }

  function featureLayer(decl, data) {
    return L.geoJSON(data, {
      pointToLayer: function (feature, latlng) { return pointMarker(decl, feature, latlng); },
      style: function (feature) {
        var colour = colourOf(decl, feature.properties || {});
        return {color: colour, weight: decl.shape === "line" ? 3 : 1.5, opacity: 0.9,
                fillColor: colour, fillOpacity: decl.fillOpacity};
      },
      onEachFeature: function (feature, layer) {
        layer.bindPopup(function () { return popupContent(decl, feature.properties || {}); },
                        {maxWidth: 320, autoPanPadding: [16, 16]});
        if (decl.shape !== "point") {
          // An area's popup stops the map's own click: tell resident.js where the click was, so a click in a
          // white zone gives both the zone's card and the report at that spot.
          layer.on("click", function (e) {
            document.dispatchEvent(new CustomEvent("lotmap:areaclick", {detail: {lat: e.latlng.lat, lon: e.latlng.lng}}));
          });
        }
      },
    });
  }

  // ---- layers and their toggles -----------------------------------------------------------------------

  var states = {};

  function container(decl, part) {
    if (decl.dense && window.lotTiles) {
      // Vector tiles (map-tiles.js) rather than GeoJSON by bounding box: drawn in the same colours and popups.
      return window.lotTiles.denseLayer(map, decl, {minZoom: config.denseMinZoom, colourOf: colourOf,
                                                    popupContent: popupContent,
                                                    keep: part ? function (props) { return partOf(part, props); } : null});
    }
    if (decl.cluster) {
      return L.markerClusterGroup({
        // Close in, every point shows on its own (a resident looks for their own building).
        showCoverageOnHover: false, chunkedLoading: true, maxClusterRadius: 45, disableClusteringAtZoom: 17,
        iconCreateFunction: function (cluster) { return clusterIcon(decl, cluster.getChildCount()); },
      });
    }
    return L.layerGroup();
  }

  function clusterIcon(decl, count) {
    // A ring of the layer's colour around the count, so clusters of different layers can be told apart.
    var size = count < 10 ? 30 : count < 100 ? 36 : count < 1000 ? 42 : 48;
    var inner = el("span", "geo-cluster__fill");
    inner.dataset.layer = decl.id;
    inner.style.borderColor = decl.color;
    inner.appendChild(el("span", null, count.toLocaleString("fr-FR")));
    inner.appendChild(el("span", "visually-hidden", " éléments regroupés : " + decl.title));
    return L.divIcon({html: inner, className: "geo-cluster", iconSize: L.point(size, size)});
  }

  function partOf(part, props) {
    // Does a feature belong to this toggle of a split layer (its code of style.toggle_by)?
    return String(props[part.field]) === String(part.code);
  }

  function fill(state, data) {
    noteDemo(data);
    if (state.part) {
      data = {type: "FeatureCollection", features: (data.features || []).filter(function (f) {
        return partOf(state.part, f.properties || {});
      })};
    }
    var layer = featureLayer(state.decl, data);
    state.group.clearLayers();
    if (state.decl.cluster) state.group.addLayers(layer.getLayers());
    else state.group.addLayer(layer);
    stackPolygons();
    return (data.features || []).length;
  }

  function stackPolygons() {
    // Layers with a lower `order` are the more specific ones: keep them on top so their popups stay reachable.
    Object.keys(states).map(function (id) { return states[id]; })
      .filter(function (s) { return s.decl.shape !== "point" && map.hasLayer(s.group); })
      .sort(function (a, b) { return b.decl.order - a.decl.order; })
      .forEach(function (s) { s.group.eachLayer(function (layer) { if (layer.bringToFront) layer.bringToFront(); }); });
  }

  function setBusy(state, busy) {
    state.item.setAttribute("aria-busy", busy ? "true" : "false");
    state.item.classList.toggle("layer--loading", busy);
  }

  function loadWhole(state) {
    if (state.loaded) return Promise.resolve();
    setBusy(state, true);
    return fetchWhole(state.decl.id).then(function (data) {
      var n = fill(state, data);
      state.loaded = true;
      say(state.decl.title + " : " + n + " élément" + (n > 1 ? "s" : "") + " affiché" + (n > 1 ? "s" : "") + ".");
    }).catch(function () {
      say(t("layerFailed", "Couche non chargée, réessayez plus tard :") + " " + state.decl.title);
    }).then(function () { setBusy(state, false); });
  }

  function bboxOf(bounds) {
    var clamp = function (v, lo, hi) { return Math.min(hi, Math.max(lo, v)).toFixed(5); };
    return [clamp(bounds.getWest(), -180, 180), clamp(bounds.getSouth(), -90, 90),
            clamp(bounds.getEast(), -180, 180), clamp(bounds.getNorth(), -90, 90)].join(",");
  }

  function loadDense(state) {
    if (state.group.isVectorTiles) return updateHints();  // the tile layer follows the view by itself
    // Dense layers (≈130,000 premises) come by bounding box, and only once zoomed in enough.
    var zoomedIn = map.getZoom() >= config.denseMinZoom;
    updateHints();
    if (!zoomedIn) {
      if (state.controller) state.controller.abort();
      state.group.clearLayers();
      state.loadedBounds = null;
      return;
    }
    var view = map.getBounds();
    if (state.loadedBounds && state.loadedBounds.contains(view)) return;
    var wanted = view.pad(0.25);
    if (state.controller) state.controller.abort();
    state.controller = new AbortController();
    setBusy(state, true);
    var url = config.api + "/" + encodeURIComponent(state.decl.id) + "?bbox=" + bboxOf(wanted);
    fetchGeoJSON(url, state.controller.signal).then(function (data) {
      setBusy(state, false);
      if (!state.on) return;
      fill(state, data);
      state.loadedBounds = wanted;
    }).catch(function (err) {
      if (err.name === "AbortError") return;
      setBusy(state, false);
      say(t("layerFailed", "Couche non chargée, réessayez plus tard :") + " " + state.decl.title);
    });
  }

  function updateHints() {
    var zoomedOut = map.getZoom() < config.denseMinZoom;
    var messages = [];
    var waiting = {};  // layer id → one of its toggles is on while zoomed out (a split layer shares one hint)
    Object.keys(states).forEach(function (id) {
      var state = states[id];
      if (!state.decl.dense) return;
      waiting[state.decl.id] = waiting[state.decl.id] || (state.on && zoomedOut);
    });
    Object.keys(states).forEach(function (id) {
      var state = states[id];
      if (!state.decl.dense) return;
      var show = waiting[state.decl.id];
      if (state.hint) state.hint.hidden = !show;
      if (show && messages.indexOf(state.decl.zoomHint) < 0) messages.push(state.decl.zoomHint);
    });
    if (!hintEl) return;
    hintEl.textContent = messages.join(" · ");
    hintEl.hidden = messages.length === 0;
  }

  function setLayer(state, on) {
    if (state.on === on) return;
    state.on = on;
    state.checkbox.checked = on;
    if (state.legend) state.legend.hidden = !on;
    cite(state.decl.attribution, on);
    if (on) {
      state.group.addTo(map);
      if (state.decl.dense) loadDense(state);
      else loadWhole(state);
    } else {
      map.removeLayer(state.group);
      if (state.decl.dense) {
        if (state.controller) state.controller.abort();
        state.group.clearLayers();
        state.loadedBounds = null;
        updateHints();
      }
    }
  }

  function addToggle(decl, id, domId, part) {
    var checkbox = document.getElementById("couche-" + domId);
    if (!checkbox) return;
    var state = {
      id: id, decl: decl, part: part, checkbox: checkbox, group: container(decl, part), on: false, loaded: false,
      item: checkbox.closest(".layer"), legend: part ? null : document.getElementById("legende-" + decl.id),
      hint: document.querySelector('[data-hint-for="' + decl.id + '"]'),
    };
    states[id] = state;
    checkbox.addEventListener("change", function () {
      setLayer(state, checkbox.checked);
      layersChanged();
    });
  }

  config.layers.forEach(function (decl) {
    prepare(decl);
    if (!decl.parts) return addToggle(decl, decl.id, decl.id, null);
    decl.parts.forEach(function (p) {
      addToggle(decl, p.id, p.domId, {field: decl.toggleBy, code: p.code});
    });
  });

  function shownLayers() {
    return Object.keys(states).filter(function (id) { return states[id].on; });
  }

  function layersChanged() {
    document.dispatchEvent(new CustomEvent("lotmap:layers", {detail: shownLayers()}));
  }

  // layers=a,b in the URL (a shared link, an embed) chooses the layers; otherwise the checkbox state (server
  // default, or what the browser restored) decides what is drawn first. Unknown names are simply not drawn.
  if (params.has("layers")) {
    var wanted = params.get("layers").split(",");
    Object.keys(states).forEach(function (id) {
      // A split layer's own id (layers=white_zones) names all its toggles.
      states[id].checkbox.checked = wanted.indexOf(id) >= 0 || wanted.indexOf(states[id].decl.id) >= 0;
    });
  }
  Object.keys(states).forEach(function (id) { if (states[id].checkbox.checked) setLayer(states[id], true); });

  // The territory fills the map, then lat, lon and zoom in the URL set the view (a shared link, an embed's
  // centre). Never animated: Leaflet ignores a setView asked while a zoom animation runs, so an animated first
  // fit would swallow the link's zoom, or the report's move to the address.
  (function initialView() {
    var lat = parseFloat(params.get("lat")), lon = parseFloat(params.get("lon")), zoom = parseFloat(params.get("zoom"));
    var okZoom = isFinite(zoom) && zoom >= map.getMinZoom() && zoom <= map.getMaxZoom();
    if (config.bounds) map.fitBounds(config.bounds, {padding: [8, 8], animate: false});
    if (isFinite(lat) && isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180) {
      map.setView([lat, lon], okZoom ? zoom : config.pointZoom || 15, {animate: false});
    } else if (okZoom) {
      map.setZoom(zoom, {animate: false});
    }
  })();

  map.on("moveend", function () {
    Object.keys(states).forEach(function (id) {
      var state = states[id];
      if (state.decl.dense && state.on) loadDense(state);
    });
    updateHints();
  });

  var form = document.getElementById("layers-form");
  if (form) form.addEventListener("submit", function (e) { e.preventDefault(); });

  // ---- panel on small screens ---------------------------------------------------------------------------

  var panel = document.getElementById("panneau");
  var toggle = document.getElementById("panel-toggle");
  if (panel && toggle) {
    toggle.addEventListener("click", function () {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      panel.classList.toggle("panel--open", open);
      if (open) panel.focus();
      map.invalidateSize();
    });
    document.addEventListener("keydown", function (e) {
      if (e.key === "Escape" && panel.classList.contains("panel--open")) {
        toggle.click();
        toggle.focus();
      }
    });
  }
  window.addEventListener("resize", function () { map.invalidateSize(); });

  // ---- "Me localiser": the browser's own geolocation; the position never leaves the page ---------------

  if ("geolocation" in navigator && config.locate !== false) {
    var Locate = L.Control.extend({
      options: {position: "topleft"},
      onAdd: function () {
        var wrapper = L.DomUtil.create("div", "leaflet-bar locate-control");
        var button = el("button", "locate-control__button", t("locate", "Me localiser"));
        button.type = "button";
        L.DomEvent.disableClickPropagation(wrapper);
        button.addEventListener("click", locate);
        wrapper.appendChild(button);
        return wrapper;
      },
    });
    var here = null;
    var locate = function () {
      say(t("locating", "Recherche de votre position…"));
      navigator.geolocation.getCurrentPosition(function (position) {
        var latlng = [position.coords.latitude, position.coords.longitude];
        if (here) map.removeLayer(here);
        here = L.circleMarker(latlng, {radius: 8, color: "#ffffff", weight: 3, fillColor: "#000091", fillOpacity: 1})
          .bindTooltip(t("here", "Votre position")).addTo(map);
        map.setView(latlng, Math.max(map.getZoom(), config.denseMinZoom));
        say(t("located", "Carte centrée sur votre position."));
        // The position stays in the page; resident.js asks this service (only) for the report there.
        document.dispatchEvent(new CustomEvent("lotmap:located", {detail: {lat: latlng[0], lon: latlng[1]}}));
      }, function () {
        say(t("noPosition", "Votre position n'est pas disponible. Vérifiez l'autorisation de localisation de votre navigateur."));
      }, {enableHighAccuracy: true, timeout: 15000, maximumAge: 60000});
    };
    new Locate().addTo(map);
  }

  // ---- what resident.js (search, report, shareable URL) needs ------------------------------------------

  window.lotMap = {map: map, config: config, say: say, t: t, shownLayers: shownLayers};
})();
