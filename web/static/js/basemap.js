/* The base map of the /admin maps (editor, queues), as the settings chose it (services/basemap/basemap_choice.py):
   read from data-basemap on the admin frame, written by the server. Tiles come from the one host the page's CSP
   allows (or from the service itself when self-hosted); with no base map configured, nothing is requested. */
(function () {
  "use strict";
  function escapeText(text) {
    // Leaflet shows attributions as HTML; an installed MBTiles file's attribution is shown as text.
    var span = document.createElement("span");
    span.textContent = text || "";
    return span.innerHTML;
  }
  function tileLayer(source) {
    var options = { attribution: escapeText(source.attribution), minNativeZoom: source.minZoom,
                    maxNativeZoom: source.maxNativeZoom, maxZoom: 20 };
    if (source.bounds) { options.bounds = source.bounds; }
    return L.tileLayer(source.url, options);
  }
  window.lotBasemap = {
    /* Adds the plan to `map`; with `withPhotos`, a switch between the plan and the aerial photographs.
       Returns whether a base map is drawn (the callers zoom closer when there are streets to see). */
    addTo: function (map, withPhotos) {
      var frame = document.querySelector("[data-basemap]");
      var config = frame ? JSON.parse(frame.getAttribute("data-basemap")) : {};
      var layers = {};
      if (config.plan) { layers[config.plan.label] = tileLayer(config.plan); }
      if (config.photo && withPhotos) { layers[config.photo.label] = tileLayer(config.photo); }
      var names = Object.keys(layers);
      if (!names.length) { return false; }
      layers[names[0]].addTo(map);
      if (names.length > 1) { L.control.layers(layers, null, { collapsed: false, position: "topright" }).addTo(map); }
      return true;
    }
  };
})();
