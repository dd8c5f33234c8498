/*
 * Vector tiles for the dense layers of the resident map (the premises…), drawn by Leaflet.VectorGrid.
 *
 * map.js asks window.lotTiles.denseLayer(map, decl, options) for the layer of a declaration with too many
 * features to load as GeoJSON. When the layer is first shown, its TileJSON
 * (/ogc/collections/{id}/tiles/WebMercatorQuad/tilejson.json, services/publish/tilesets.py) gives the tile address and
 * zoom range; each tile is a Mapbox Vector Tile built by PostGIS (services/publish/vector_tiles.py). Colours and popups are
 * map.js's own (options.colourOf, options.popupContent), so the layer looks the same as when it came as GeoJSON;
 * options.keep, when given, tells which features one toggle of a split layer draws.
 * Without this file or without the vendored library, map.js keeps loading dense layers by bounding box.
 */
(function () {
  "use strict";

  if (!window.L || !L.vectorGrid) return;

  // Two mends for VectorGrid 1.3 under Leaflet 1.9. Leaflet 1.8 removed L.DomEvent.fakeStop, which VectorGrid
  // calls on a click on a feature: marking the event stopped keeps the click for the feature, as a marker does.
  if (!L.DomEvent.fakeStop) L.DomEvent.fakeStop = function (e) { e._stopped = true; };
  // Leaflet 1.9 places the click of a small circle at the circle's own position, which a tile symbol does not
  // have (it only knows tile pixels): without a getLatLng, the click's own position is used.
  var createLayer = L.VectorGrid.prototype._createLayer;
  L.VectorGrid.prototype._createLayer = function () {
    var layer = createLayer.apply(this, arguments);
    if (layer && !layer._latlng) layer.getLatLng = undefined;
    return layer;
  };

  // This script's own address gives the service's base path (the site may be served under a prefix).
  var script = document.currentScript;
  var base = script ? script.src.replace(/\/static\/js\/map-tiles\.js.*$/, "") : "";

  // The tiles follow the view by themselves: map.js has nothing to clear on zooming out or switching off.
  var TileGroup = L.LayerGroup.extend({
    isVectorTiles: true,
    clearLayers: function () { return this; },
    onAdd: function (map) {
      if (!this._requested) {
        this._requested = true;
        this._load(map);
      }
      L.LayerGroup.prototype.onAdd.call(this, map);
    },
  });

  function withLists(decl, properties) {
    // MVT has no lists: tiles carry them as JSON text, which the popup wants back as lists.
    var out = L.extend({}, properties);
    decl.popup.forEach(function (field) {
      if (field.type === "string_list" && typeof out[field.name] === "string") {
        try { out[field.name] = JSON.parse(out[field.name]); } catch (e) { /* keep the text */ }
      }
    });
    return out;
  }

  function styleOf(decl, colourOf, keep) {
    return function (properties) {
      if (keep && !keep(properties)) return [];  // another toggle's feature (a split layer): not drawn
      var colour = colourOf(decl, properties);
      if (decl.shape === "point") {
        // The size of map.js's dots (2 × radius + 4 pixels across), with their white rim.
        return {radius: decl.radius + 2, fill: true, fillColor: colour, fillOpacity: 1, color: "#ffffff", weight: 1};
      }
      return {color: colour, weight: decl.shape === "line" ? 3 : 1.5, opacity: 0.9,
              fill: decl.shape === "polygon", fillColor: colour, fillOpacity: decl.fillOpacity};
    };
  }

  function denseLayer(map, decl, options) {
    var group = new TileGroup();
    group._load = function () {
      var url = base + "/ogc/collections/" + encodeURIComponent(decl.id) + "/tiles/WebMercatorQuad/tilejson.json";
      fetch(url, {headers: {Accept: "application/json"}}).then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.json();
      }).then(function (tilejson) {
        var styles = {};
        styles[decl.id] = styleOf(decl, options.colourOf, options.keep);
        var grid = L.vectorGrid.protobuf(tilejson.tiles[0], {
          // Among the overlays, above the background drawn from the boundary layers (pane "fond").
          pane: "overlayPane", rendererFactory: L.canvas.tile, vectorTileLayerStyles: styles, interactive: true,
          minZoom: options.minZoom, maxNativeZoom: tilejson.maxzoom,
          getFeatureId: function (feature) { return feature.id; },
        });
        grid.on("click", function (e) {
          var content = options.popupContent(decl, withLists(decl, e.layer.properties || {}));
          L.popup({maxWidth: 320, autoPanPadding: [16, 16]}).setLatLng(e.latlng).setContent(content).openOn(map);
        });
        group.addLayer(grid);
      }).catch(function () {
        group._requested = false;  // try again the next time the layer is shown
        if (options.failed) options.failed();
      });
    };
    return group;
  }

  window.lotTiles = {denseLayer: denseLayer};
})();
