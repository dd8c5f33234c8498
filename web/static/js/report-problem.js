/*
 * « Signaler un problème » on the map: a form in the report panel (from the report, or from a feature's popup),
 * sent as JSON to /api/reports, answered with the private follow-up link. Categories come from the service's own
 * Open311 description (/open311/v2/services.json). Every text is set with textContent; the form works with the
 * keyboard alone (native controls, fieldsets with legends, focus moved to the heading and to the answer).
 * Without JavaScript, the same form is the page /map/signaler.
 */
(function () {
  "use strict";

  var lot = window.lotMap;
  if (!lot) return;
  var script = document.currentScript;
  var base = (script && script.getAttribute("data-base")) || "";
  var retentionDays = (script && script.getAttribute("data-retention-days")) || "365";
  var maxText = parseInt((script && script.getAttribute("data-max-text")) || "2000", 10);
  var maxPhotoMb = parseInt((script && script.getAttribute("data-max-photo-mb")) || "5", 10);
  var panel = document.getElementById("rapport");
  var panelBody = document.getElementById("rapport-contenu");
  var services = null;
  var n = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function loadServices() {
    if (services) return Promise.resolve(services);
    return fetch(base + "/open311/v2/services.json").then(function (r) { return r.json(); }).then(function (list) {
      var withAttributes = list.filter(function (s) { return s.metadata; }).map(function (s) {
        return fetch(base + "/open311/v2/services/" + encodeURIComponent(s.service_code) + ".json")
          .then(function (r) { return r.json(); }).then(function (def) { s.attributes = def.attributes; });
      });
      return Promise.all(withAttributes).then(function () { services = list; return list; });
    });
  }

  function field(labelText, control, help) {
    var p = el("p", "problem-form__field");
    var label = el("label", null, labelText);
    label.htmlFor = control.id;
    p.appendChild(label);
    p.appendChild(control);
    if (help) {
      var h = el("span", "problem-form__help", help);
      h.id = control.id + "-aide";
      control.setAttribute("aria-describedby", h.id);
      p.appendChild(h);
    }
    return p;
  }

  function buildForm(where, list) {
    n += 1;
    var id = function (name) { return "signaler-" + n + "-" + name; };
    var box = el("section", "rpt-section problem-panel");
    var title = el("h3", "rpt-section__title", "Signaler un problème");
    title.id = id("titre");
    title.tabIndex = -1;
    box.setAttribute("aria-labelledby", title.id);
    box.appendChild(title);
    box.appendChild(el("p", "rpt-where", where.label || ("Point " + where.lat.toFixed(5) + ", " + where.lon.toFixed(5))));
    var form = el("form", "problem-form");
    form.noValidate = false;
    var cats = el("fieldset", "problem-form__group");
    cats.appendChild(el("legend", null, "Quel est le problème ?"));
    var extras = el("fieldset", "problem-form__group");
    extras.appendChild(el("legend", null, "Précisions sur la couverture mobile (facultatif)"));
    extras.hidden = true;
    list.forEach(function (service, i) {
      var p = el("p", "problem-form__choice");
      var radio = el("input");
      radio.type = "radio";
      radio.name = "category";
      radio.value = service.service_code;
      radio.id = id("cat-" + service.service_code);
      radio.required = true;
      if ((where.category && where.category === service.service_code) || (!where.category && i === 0)) radio.checked = true;
      var label = el("label", null, service.service_name);
      label.htmlFor = radio.id;
      p.appendChild(radio);
      p.appendChild(label);
      cats.appendChild(p);
      (service.attributes || []).forEach(function (attribute) {
        var select = el("select");
        select.name = attribute.code;
        select.id = id(attribute.code);
        select.appendChild(el("option", null, "—")).value = "";
        attribute.values.forEach(function (v) { select.appendChild(el("option", null, v.name)).value = v.key; });
        extras.appendChild(field(attribute.description, select));
      });
    });
    form.appendChild(cats);
    form.appendChild(extras);
    function showExtras() {
      var chosen = form.querySelector("input[name=category]:checked");
      extras.hidden = !(chosen && chosen.value === "mobile");
    }
    cats.addEventListener("change", showExtras);
    var text = el("textarea");
    text.id = id("texte");
    text.name = "description";
    text.rows = 3;
    text.maxLength = maxText;
    form.appendChild(field("Précisez (facultatif)", text, "N'écrivez pas d'informations personnelles (nom, téléphone)."));
    var photo = el("input");
    photo.type = "file";
    photo.id = id("photo");
    photo.name = "photo";
    photo.accept = "image/jpeg,image/png,image/webp";
    form.appendChild(field("Photo (facultative)", photo, "JPEG, PNG ou WebP, " + maxPhotoMb + " Mo au plus ; " +
      "ses métadonnées (lieu, appareil) sont effacées. Seuls vous et les agents la voient."));
    var email = el("input");
    email.type = "email";
    email.id = id("courriel");
    email.name = "email";
    email.autocomplete = "email";
    email.maxLength = 254;
    var mail = el("fieldset", "problem-form__group");
    mail.appendChild(el("legend", null, "Être prévenu par courriel (facultatif)"));
    mail.appendChild(field("Adresse électronique", email));
    var consentP = el("p", "problem-form__choice");
    var consent = el("input");
    consent.type = "checkbox";
    consent.id = id("consentement");
    consent.name = "consent";
    var consentLabel = el("label", null, "J'accepte que cette adresse serve à me tenir informé de ce signalement");
    consentLabel.htmlFor = consent.id;
    var consentHelp = el("span", "problem-form__help", "Elle n'est utilisée que pour ce suivi, n'est jamais publiée " +
      "ni montrée aux agents, et est effacée " + retentionDays + " jours après votre signalement.");
    consentHelp.id = consent.id + "-aide";
    consent.setAttribute("aria-describedby", consentHelp.id);
    consentP.appendChild(consent);
    consentP.appendChild(consentLabel);
    consentP.appendChild(consentHelp);
    mail.appendChild(consentP);
    form.appendChild(mail);
    // The robots' trap: off screen, out of the tab order, hidden from assistive technologies.
    var trap = el("div", "problem-form__trap");
    trap.setAttribute("aria-hidden", "true");
    var website = el("input");
    website.type = "text";
    website.name = "website";
    website.tabIndex = -1;
    website.autocomplete = "off";
    website.id = id("site");
    var trapLabel = el("label", null, "Ne pas remplir ce champ");
    trapLabel.htmlFor = website.id;
    trap.appendChild(trapLabel);
    trap.appendChild(website);
    form.appendChild(trap);
    var answer = el("div", "problem-form__answer");
    answer.id = id("reponse");
    form.appendChild(answer);
    var send = el("button", "search__button", "Envoyer le signalement");
    send.type = "submit";
    form.appendChild(el("p")).appendChild(send);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var chosen = form.querySelector("input[name=category]:checked");
      var details = {};
      extras.querySelectorAll("select").forEach(function (s) { if (s.value && !extras.hidden) details[s.name] = s.value; });
      var body = {category: chosen ? chosen.value : "", lon: where.lon, lat: where.lat, description: text.value,
                  details: details, email: email.value.trim() || null, consent: consent.checked, website: website.value};
      if (where.layer) body.layer = where.layer;
      if (where.fid) body.feature_id = where.fid;
      send.disabled = true;
      answer.replaceChildren(el("p", null, "Envoi en cours…"));
      fetch(base + "/api/reports", {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify(body)}).then(function (response) {
        return response.json().then(function (json) { return {ok: response.ok, body: json}; });
      }).then(function (result) {
        send.disabled = false;
        if (!result.ok) {
          var problem = el("div", "rpt-problem");
          problem.setAttribute("role", "alert");
          problem.tabIndex = -1;
          problem.appendChild(el("p", "rpt-problem__title", result.body.title || "Signalement non envoyé"));
          problem.appendChild(el("p", null, result.body.detail || ""));
          answer.replaceChildren(problem);
          problem.focus();
          return;
        }
        done(box, result.body);
        if (photo.files.length && !result.body.duplicate) sendPhoto(box, result.body.follow_up_url, photo.files[0]);
      }).catch(function () {
        send.disabled = false;
        answer.replaceChildren(el("p", "rpt-problem", "L'envoi n'a pas abouti. Réessayez."));
      });
    });
    box.appendChild(form);
    return {box: box, title: title};
  }

  function done(box, result) {
    var title = el("h3", "rpt-section__title", "Signalement envoyé");
    title.tabIndex = -1;
    var message = el("p", "problem-done", result.message);
    message.setAttribute("role", "status");
    var intro = el("p", null, "Votre lien de suivi, personnel (gardez-le, par exemple en favori) :");
    var link = el("a", "problem-link__a", result.follow_up_url);
    link.href = result.follow_up_url;
    link.id = "lien-suivi-panneau";
    var p = el("p", "problem-link");
    p.appendChild(link);
    box.replaceChildren(title, message, intro, p);
    title.focus();
    lot.say(result.message);
  }

  // The photo goes after the report, with the follow-up link's token (services/reports/follow_up.attach_photo).
  function sendPhoto(box, followUpUrl, file) {
    var status = el("p", "problem-photo", "Envoi de la photo…");
    status.setAttribute("role", "status");
    box.appendChild(status);
    var data = new FormData();
    data.append("photo", file);
    fetch(followUpUrl + "/photo", {method: "POST", body: data}).then(function (response) {
      return response.json().then(function (json) { return {ok: response.ok, body: json}; });
    }).then(function (result) {
      status.textContent = result.ok ? "Photo jointe au signalement." :
        "Photo non jointe : " + (result.body.detail || "refusée") + ". Le signalement, lui, est bien enregistré.";
    }).catch(function () {
      status.textContent = "Photo non jointe (envoi interrompu). Le signalement, lui, est bien enregistré.";
    });
  }

  function open(where) {
    panel.hidden = false;
    document.body.classList.add("has-report");
    lot.map.invalidateSize();
    panelBody.replaceChildren(el("p", "rpt-loading", "Chargement du formulaire…"));
    loadServices().then(function (list) {
      var built = buildForm(where, list);
      panelBody.replaceChildren(built.box);
      built.title.focus();
    }).catch(function () {
      panelBody.replaceChildren(el("p", "rpt-problem", "Le formulaire n'a pas pu être chargé. Réessayez plus tard."));
    });
  }

  function button(where, text) {
    var b = el("button", "button rpt-report-button", text || "Signaler un problème");
    b.type = "button";
    b.addEventListener("click", function () { open(where); });
    return b;
  }

  // A feature's popup: the same button, about that feature (its layer and id) at its place.
  var CATEGORY_OF_LAYER = {premises: "fibre", ftth_cabinets: "fibre", ftth_zones: "fibre", mobile_masts: "mobile",
                           mobile_coverage: "mobile", white_zones: "mobile", wifi_hotspots: "wifi",
                           third_places: "place", digital_help_places: "place"};
  lot.map.on("popupopen", function (e) {
    var root = e.popup.getElement() && e.popup.getElement().querySelector(".leaflet-popup-content");
    var source = e.popup._source;
    if (!root || root.querySelector(".rpt-report-button")) return;
    var feature = source && source.feature;
    var layerId = null;
    if (feature) {
      var marker = root.querySelector("[data-layer]") || (source.getElement && source.getElement() &&
                                                            source.getElement().querySelector("[data-layer]"));
      layerId = marker ? marker.getAttribute("data-layer") : null;
    }
    var latlng = e.popup.getLatLng();
    root.appendChild(button({lon: Number(latlng.lng.toFixed(6)), lat: Number(latlng.lat.toFixed(6)),
                             layer: layerId, fid: feature && typeof feature.id === "number" ? feature.id : null,
                             category: CATEGORY_OF_LAYER[layerId] || null}));
  });

  window.lotReportProblem = {open: open, button: button};
})();
