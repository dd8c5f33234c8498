/*
 * "Services près de chez vous": address search (accessible combobox), click-to-query, geolocation, the
 * report panel (a bottom sheet on phones) and a URL that keeps the state, so a link can be shared.
 *
 * map.js draws the map and the layers and exposes window.lotMap. The report comes from /api/nearby as JSON
 * whose texts are already French; this script only lays them out, always with textContent.
 */
(function () {
  "use strict";

  var lot = window.lotMap;
  if (!lot) return;
  var map = lot.map;
  var urls = lot.config.resident;
  var input = document.getElementById("recherche");
  var list = document.getElementById("recherche-liste");
  var form = document.getElementById("recherche-form");
  var searchStatus = document.getElementById("recherche-statut");
  var panel = document.getElementById("rapport");
  var panelBody = document.getElementById("rapport-contenu");
  var panelTitle = document.getElementById("rapport-titre");
  var closeButton = document.getElementById("rapport-fermer");
  var dateFormat = new Intl.DateTimeFormat("fr-FR", {day: "numeric", month: "long", year: "numeric", timeZone: "UTC"});
  var state = {address: null, lon: null, lat: null};
  var marker = null;
  var reportRequest = null;
  // A shared link's zoom applies to its first report; later reports zoom in to at least pointZoom.
  var linkZoom = parseFloat(new URLSearchParams(window.location.search).get("zoom"));

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function frenchDate(iso) {
    if (!iso) return null;
    var date = new Date(String(iso).slice(0, 10) + "T00:00:00Z");
    if (isNaN(date)) return String(iso);
    // "1er janvier 2019", as French writes the first day of a month.
    return dateFormat.format(date).replace(/^1 /, "1er ");
  }

  // ---- the shareable URL: address or lon/lat, layers, zoom ---------------------------------------------

  function writeUrl() {
    var params = new URLSearchParams();
    if (state.address) {
      params.set("address", state.address);
    } else if (state.lon !== null) {
      params.set("lon", state.lon.toFixed(6));
      params.set("lat", state.lat.toFixed(6));
    }
    params.set("layers", lot.shownLayers().join(","));
    params.set("zoom", String(map.getZoom()));
    window.history.replaceState(null, "", window.location.pathname + "?" + params.toString());
  }
  document.addEventListener("lotmap:layers", writeUrl);
  map.on("zoomend", function () { if (state.lon !== null || state.address) writeUrl(); });

  // ---- the combobox (WAI-ARIA 1.2 "list autocomplete" pattern) -----------------------------------------

  var results = [];
  var active = -1;
  var timer = null;
  var searchRequest = null;

  function openList(open) {
    list.hidden = !open;
    input.setAttribute("aria-expanded", open ? "true" : "false");
    if (!open) setActive(-1);
  }

  function setActive(index) {
    active = index;
    Array.prototype.forEach.call(list.children, function (option, i) {
      option.setAttribute("aria-selected", i === index ? "true" : "false");
      option.classList.toggle("search__option--active", i === index);
    });
    if (index >= 0 && list.children[index]) {
      input.setAttribute("aria-activedescendant", list.children[index].id);
      list.children[index].scrollIntoView({block: "nearest"});
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }

  var TYPES = {adresse: "adresse", voie: "voie ou lieu-dit", commune: "commune"};

  function showResults(found) {
    results = found;
    list.replaceChildren();
    found.forEach(function (result, i) {
      var option = el("li", "search__option");
      option.id = "recherche-option-" + i;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.appendChild(el("span", "search__option-label", result.label));
      option.appendChild(el("span", "search__option-type", TYPES[result.type] || result.type));
      // mousedown would blur the input before the click: keep the focus where the keyboard user is.
      option.addEventListener("mousedown", function (e) { e.preventDefault(); });
      option.addEventListener("click", function () { choose(result); });
      list.appendChild(option);
    });
    openList(found.length > 0);
    searchStatus.textContent = found.length
      ? found.length + (found.length > 1 ? " adresses proposées" : " adresse proposée") +
        ", flèches haut et bas pour choisir, Entrée pour valider."
      : "Aucune adresse ne correspond.";
  }

  function geocode(q, limit) {
    if (searchRequest) searchRequest.abort();
    searchRequest = new AbortController();
    var url = urls.geocode + "?q=" + encodeURIComponent(q) + "&limit=" + limit;
    return fetch(url, {signal: searchRequest.signal}).then(function (response) {
      if (!response.ok) return {results: []};
      return response.json();
    }).then(function (body) { return body.results || []; });
  }

  input.addEventListener("input", function () {
    clearTimeout(timer);
    var q = input.value.trim();
    if (q.length < 2) {
      results = [];
      list.replaceChildren();
      openList(false);
      return;
    }
    timer = setTimeout(function () {
      geocode(q, 8).then(showResults).catch(function (err) {
        if (err.name !== "AbortError") searchStatus.textContent = "La recherche n'a pas abouti. Réessayez.";
      });
    }, 120);
  });

  input.addEventListener("keydown", function (e) {
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (!results.length) return;
      e.preventDefault();
      if (list.hidden) openList(true);
      var n = results.length;
      if (e.key === "ArrowDown") setActive(active + 1 >= n ? 0 : active + 1);
      else setActive(active - 1 < 0 ? n - 1 : active - 1);
    } else if (e.key === "Enter") {
      if (!list.hidden && active >= 0) {
        e.preventDefault();
        choose(results[active]);
      }
    } else if (e.key === "Escape") {
      if (!list.hidden) {
        e.preventDefault();
        openList(false);
      } else if (input.value) {
        input.value = "";
      }
    }
  });

  input.addEventListener("blur", function () { setTimeout(function () { openList(false); }, 150); });

  form.addEventListener("submit", function (e) {
    // Without JavaScript the form opens /map/report; here the best answer is shown on the map.
    e.preventDefault();
    var q = input.value.trim();
    if (!q) {
      searchStatus.textContent = "Tapez une adresse ou le nom d'une commune.";
      return;
    }
    geocode(q, 1).then(function (found) {
      if (found.length) choose(found[0]);
      else showResults([]);
    }).catch(function () { searchStatus.textContent = "La recherche n'a pas abouti. Réessayez."; });
  });

  function choose(result) {
    input.value = result.label;
    openList(false);
    query({lon: result.lon, lat: result.lat, address: result.label, focus: true});
  }

  // ---- the report --------------------------------------------------------------------------------------

  function query(where) {
    state = {address: where.address || null, lon: where.lon, lat: where.lat};
    var url = urls.nearby + "?" + (where.lon !== undefined && where.lon !== null
      ? "lon=" + encodeURIComponent(where.lon) + "&lat=" + encodeURIComponent(where.lat)
      : "address=" + encodeURIComponent(where.address));
    if (reportRequest) reportRequest.abort();
    reportRequest = new AbortController();
    openPanel();
    panelBody.setAttribute("aria-busy", "true");
    panelBody.replaceChildren(el("p", "rpt-loading", "Chargement du rapport…"));
    lot.say("Chargement du rapport…");
    return fetch(url, {signal: reportRequest.signal}).then(function (response) {
      return response.json().then(function (body) { return {ok: response.ok, body: body}; });
    }).then(function (answer) {
      panelBody.removeAttribute("aria-busy");
      if (!answer.ok) {
        showProblem(answer.body);
        return;
      }
      var report = answer.body;
      state.lon = report.query.lon;
      state.lat = report.query.lat;
      // The report first: on a phone its height decides where the point must show above it.
      panelBody.replaceChildren(renderReport(report, where.address));
      placeMarker(report);
      writeUrl();
      lot.say("Rapport affiché : " + report.fibre.headline + ".");
      if (where.focus) panelTitle.focus();
    }).catch(function (err) {
      if (err.name === "AbortError") return;
      panelBody.removeAttribute("aria-busy");
      showProblem({title: "Erreur", detail: "Le rapport n'a pas pu être chargé. Réessayez plus tard."});
    });
  }

  function showProblem(problem) {
    var box = el("div", "rpt-problem");
    box.setAttribute("role", "alert");
    box.appendChild(el("p", "rpt-problem__title", problem.title || "Erreur"));
    box.appendChild(el("p", null, problem.detail || ""));
    panelBody.replaceChildren(box);
    lot.say(problem.detail || problem.title || "Erreur");
  }

  function placeMarker(report) {
    var latlng = [report.query.lat, report.query.lon];
    if (marker) map.removeLayer(marker);
    marker = L.circleMarker(latlng, {radius: 9, color: "#ffffff", weight: 3, fillColor: "#e1000f", fillOpacity: 1,
                                     interactive: false}).addTo(map);
    var zoom = Math.max(map.getZoom(), lot.config.pointZoom || 15);
    if (isFinite(linkZoom) && linkZoom >= map.getMinZoom() && linkZoom <= map.getMaxZoom()) zoom = linkZoom;
    linkZoom = NaN;
    map.setView(latlng, zoom, {animate: false});
    showPointAboveSheet(true);
  }

  // On a phone the report is a bottom sheet over the map's lower part: the point must show in the part above it.
  // The sheet's height settles after layout (fonts, a late resize of the window), so this runs again whenever
  // the sheet or the map changes size; it only moves the map when the point is hidden behind the sheet.
  function showPointAboveSheet(always) {
    if (!marker || panel.hidden || window.getComputedStyle(panel).position !== "fixed") return;
    var mapBox = map.getContainer().getBoundingClientRect();
    var sheetTop = panel.getBoundingClientRect().top;
    var visibleBottom = Math.min(mapBox.bottom, sheetTop) - mapBox.top;
    if (visibleBottom <= 0) return;
    var point = map.latLngToContainerPoint(marker.getLatLng());
    if (!always && point.y > 0 && point.y < visibleBottom) return;
    map.panBy([0, point.y - visibleBottom / 2], {animate: false});
  }
  if (window.ResizeObserver) {
    var sheetWatcher = new ResizeObserver(function () { showPointAboveSheet(false); });
    sheetWatcher.observe(panel);
    sheetWatcher.observe(map.getContainer());
  }

  function openPanel() {
    panel.hidden = false;
    document.body.classList.add("has-report");
    map.invalidateSize();
  }

  closeButton.addEventListener("click", function () {
    panel.hidden = true;
    document.body.classList.remove("has-report");
    map.invalidateSize();
    input.focus();
  });
  panel.addEventListener("keydown", function (e) {
    if (e.key === "Escape") closeButton.click();
  });

  function queryAt(lat, lon) {
    input.value = "";
    query({lon: Number(lon.toFixed(6)), lat: Number(lat.toFixed(6))});
  }
  map.on("click", function (e) { queryAt(e.latlng.lat, e.latlng.lng); });
  document.addEventListener("lotmap:areaclick", function (e) { queryAt(e.detail.lat, e.detail.lon); });
  document.addEventListener("lotmap:located", function (e) {
    input.value = "";
    query({lon: Number(e.detail.lon.toFixed(6)), lat: Number(e.detail.lat.toFixed(6)), focus: true});
  });

  // ---- laying the report out ---------------------------------------------------------------------------

  function sources(list) {
    var p = el("p", "rpt-source");
    var lines = [];
    (list || []).forEach(function (s) {
      var text = "Source : " + s.attribution;
      if (s.date) text += " — données du " + frenchDate(s.date);
      if (s.demo) text += " (démonstration)";
      if (lines.indexOf(text) < 0) lines.push(text);  // two layers of one source are cited once
    });
    p.textContent = lines.join(" · ");
    return p;
  }

  function section(title, data) {
    var box = el("section", "rpt-section");
    box.appendChild(el("h3", "rpt-section__title", title));
    if (data && data.headline) box.appendChild(el("p", "rpt-headline", data.headline));
    if (data && data.message) box.appendChild(el("p", "rpt-message", data.message));
    return box;
  }

  function facts(pairs) {
    var dl = el("dl", "rpt-facts");
    pairs.forEach(function (pair) {
      if (pair[1] === null || pair[1] === undefined || pair[1] === "") return;
      dl.appendChild(el("dt", null, pair[0]));
      var dd = el("dd");
      if (pair[2] && /^https?:\/\/\S+$/i.test(pair[1])) {
        var link = el("a", null, pair[1]);
        link.href = pair[1];  // only http(s): a "javascript:" value stays text
        link.rel = "noopener noreferrer";
        dd.appendChild(link);
      } else {
        dd.textContent = pair[1];
      }
      dl.appendChild(dd);
    });
    return dl;
  }

  function fibre(data) {
    var box = el("section", "rpt-section rpt-fibre");
    box.appendChild(el("h3", "rpt-section__title", data.title));
    var badge = el("p", "rpt-status rpt-status--" + data.status, data.headline);
    box.appendChild(badge);
    box.appendChild(el("p", "rpt-message", data.message));
    var p = data.premise;
    if (p) {
      box.appendChild(facts([
        ["Local", p.adresse],
        ["État", p.etat_label],
        ["Date prévue", frenchDate(p.date_prevue)],
        ["Raccordable depuis", frenchDate(p.date_raccordable)],
        ["Point de mutualisation", p.cabinet ? p.cabinet.nom + " (" + (p.cabinet.statut_label || p.cabinet.statut) + ")"
                                             : p.pm_ref],
      ]));
    }
    if (p && p.offers && p.offers.length) {
      box.appendChild(el("p", "rpt-note", "Offres à cette adresse :"));
      var offers = el("ul", "rpt-offers");
      p.offers.forEach(function (o) {
        offers.appendChild(el("li", null, o.operateur + " — " + o.technologie +
          (o.debit_descendant ? " — " + o.debit_descendant : "") + (o.sature ? " (réseau saturé)" : "")));
      });
      box.appendChild(offers);
    }
    var f = data.commune_figures;
    if (f && f.locaux) {
      box.appendChild(el("p", "rpt-note", "À " + f.commune + " : " + f.eligibles.toLocaleString("fr-FR") +
        " locaux éligibles sur " + f.locaux.toLocaleString("fr-FR") + " (" + Math.round(100 * f.part_eligible) + " %)."));
    }
    box.appendChild(sources(data.sources));
    return box;
  }

  function mobile(data) {
    var box = section(data.title, data);
    var table = el("table", "rpt-table");
    table.appendChild(el("caption", "visually-hidden", "Opérateurs mobiles à moins de " +
      Math.round(data.radius_m / 1000) + " km"));
    var head = el("tr");
    ["Opérateur", "Site en service le plus proche", "Zone blanche"].forEach(function (h) {
      var th = el("th", null, h);
      th.scope = "col";
      head.appendChild(th);
    });
    var thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var body = el("tbody");
    data.operators.forEach(function (op) {
      var tr = el("tr");
      var th = el("th", null, op.label);
      th.scope = "row";
      tr.appendChild(th);
      tr.appendChild(el("td", null, op.summary));
      var zones = Object.keys(op.white_zone).map(function (tech) {
        var flag = op.white_zone[tech];
        return tech + " : " + (flag === null ? "—" : flag ? "oui" : "non");
      });
      tr.appendChild(el("td", null, zones.join(" · ") || "—"));
      body.appendChild(tr);
    });
    table.appendChild(body);
    box.appendChild(table);
    box.appendChild(sources(data.sources));
    return box;
  }

  // The coming seven days of a place's hours, in the territory's time (computed by the server): a table
  // behind a disclosure, today marked in words and by aria-current, not by colour alone.
  function week(item) {
    var box = el("details", "rpt-week");
    box.appendChild(el("summary", "rpt-week__summary", "Horaires des 7 prochains jours"));
    var table = el("table", "rpt-table rpt-week__table");
    var caption = el("caption", null, "Horaires des 7 prochains jours");
    caption.appendChild(el("span", "visually-hidden", " : " + item.name));
    table.appendChild(caption);
    var head = el("tr");
    ["Jour", "Horaires"].forEach(function (h) {
      var th = el("th", null, h);
      th.scope = "col";
      head.appendChild(th);
    });
    var thead = el("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    var body = el("tbody");
    item.week.forEach(function (day) {
      var tr = el("tr", "rpt-week__day rpt-week__day--" + day.state + (day.today ? " rpt-week__day--today" : ""));
      if (day.today) tr.setAttribute("aria-current", "date");
      var th = el("th", null, day.label);
      th.scope = "row";
      if (day.today) th.appendChild(el("span", "rpt-week__tag", " (aujourd'hui)"));
      if (day.holiday) th.appendChild(el("span", "rpt-week__tag", " (férié)"));
      tr.appendChild(th);
      tr.appendChild(el("td", null, day.text));
      body.appendChild(tr);
    });
    table.appendChild(body);
    box.appendChild(table);
    return box;
  }

  function place(item) {
    var li = el("li", "rpt-place");
    li.appendChild(el("h4", "rpt-place__name", item.name));
    var meta = [item.category_label, item.distance_label].filter(Boolean).join(" · ");
    li.appendChild(el("p", "rpt-place__meta", meta));
    if (item.address || item.commune) {
      li.appendChild(el("p", "rpt-place__address", [item.address, item.commune].filter(Boolean).join(", ")));
    }
    if (item.opening) {
      li.appendChild(el("p", "rpt-open rpt-open--" + item.opening.state, item.opening.label));
    }
    if (item.hours_text) {
      var hours = el("p", "rpt-hours");
      hours.appendChild(el("span", "rpt-hours__label", "Horaires : "));
      hours.appendChild(document.createTextNode(item.hours_text));
      li.appendChild(hours);
    }
    if (item.week) li.appendChild(week(item));
    if (item.services && item.services.length) {
      li.appendChild(el("p", "rpt-place__services", "Services : " + item.services.join(", ")));
    }
    if (item.details && item.details.length) {
      li.appendChild(facts(item.details.map(function (d) { return [d.label, d.value, d.link]; })));
    }
    return li;
  }

  function places(data, extra) {
    var box = section(data.title, data);
    var ul = el("ul", "rpt-places");
    data.items.forEach(function (item) { ul.appendChild(place(item)); });
    box.appendChild(ul);
    if (extra) box.appendChild(extra);
    box.appendChild(sources(data.sources));
    return box;
  }

  function renderReport(report, label) {
    var root = document.createDocumentFragment();
    var where = el("p", "rpt-where", label || ("Point " + report.query.lat.toFixed(5) + ", " + report.query.lon.toFixed(5)));
    root.appendChild(where);
    if (report.commune) {
      root.appendChild(el("p", "rpt-commune", report.commune.nom_actuel +
        (report.commune.epci ? " — " + report.commune.epci.nom : "")));
    }
    if (report.demo) root.appendChild(el("p", "rpt-demo", "Données de démonstration : les lieux et états sont fictifs."));
    root.appendChild(fibre(report.fibre));
    var med = section(report.med.title, report.med);
    med.appendChild(sources(report.med.sources));
    root.appendChild(med);
    root.appendChild(mobile(report.mobile));
    var planned = report.wifi.planned
      ? el("p", "rpt-note", "Une borne est programmée plus près : " + report.wifi.planned.name + ", " +
           report.wifi.planned.distance_label + ".")
      : null;
    root.appendChild(places(report.wifi, planned));
    root.appendChild(places(report.third_places));
    root.appendChild(places(report.digital_help));
    // « Signaler un problème » at this place (report-problem.js): the form opens in this panel.
    if (window.lotReportProblem) {
      root.appendChild(window.lotReportProblem.button({lon: report.query.lon, lat: report.query.lat, label: label},
                                                      "Signaler un problème ici"));
    }
    var link = el("a", "rpt-link", "Version texte de ce rapport");
    link.href = urls.reportPage + "?" + (label ? "address=" + encodeURIComponent(label)
      : "lon=" + report.query.lon + "&lat=" + report.query.lat);
    var p = el("p", "rpt-footer");
    p.appendChild(link);
    root.appendChild(p);
    return root;
  }

  // ---- start from the URL: ?address=… or ?lon=…&lat=… ---------------------------------------------------

  var params = new URLSearchParams(window.location.search);
  var lon = parseFloat(params.get("lon")), lat = parseFloat(params.get("lat"));
  if (params.get("address")) {
    input.value = params.get("address");
    geocode(params.get("address"), 1).then(function (found) {
      if (found.length) query({lon: found[0].lon, lat: found[0].lat, address: found[0].label});
      else showResults([]);
    });
  } else if (isFinite(lon) && isFinite(lat)) {
    query({lon: lon, lat: lat});
  }
})();
