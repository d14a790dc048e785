/* covplan serve: the meeting page. Everything comes from the local server (no internet). */
(function () {
  "use strict";
  const CFG = window.COVPLAN || {};
  const T = {
    zh: { variant: "方案", newname: "新方案名称", newvar: "新建", undo: "撤销", redo: "重做", reset: "重置",
      save: "保存方案", export: "导出成果", service: "服务", best: "最佳新增点位", bestgo: "计算",
      addtitle: "新增设施", name: "名称", type: "类型", capacity: "规模", add: "添加", cancel: "取消",
      units: "乡镇（街道）覆盖率（由低到高）", checks: "标准核查", compare: "方案对比", cmpgo: "对比",
      howto: "点击地图新增设施；点击候选点位建设；拖动设施移动；点击设施删除或修改。",
      covered: "覆盖人口", share: "覆盖率", change: "较现状", remove: "删除", update: "修改", accept: "采纳",
      acceptall: "全部采纳", saved: "已保存：", exported: "已导出：", working: "计算中…", ms: "毫秒",
      unit: "乡镇（街道）", people: "人", circle15: "15公里城乡服务圈", synthetic: "合成示例数据",
      candidate: "候选点位", newcov: "新增覆盖", none: "无", indicator: "指标", value: "现值", target: "目标" },
    en: { variant: "Variant", newname: "new variant name", newvar: "New", undo: "Undo", redo: "Redo", reset: "Reset",
      save: "Save plan", export: "Export outputs", service: "Service", best: "Best new sites", bestgo: "Run",
      addtitle: "Add a facility", name: "Name", type: "Type", capacity: "Capacity", add: "Add", cancel: "Cancel",
      units: "Townships, worst first", checks: "Standards checks", compare: "Compare variants", cmpgo: "Compare",
      howto: "Click the map to add a facility; click a candidate to build it; drag a facility to move it; click one to remove or change it.",
      covered: "Covered", share: "Share", change: "vs baseline", remove: "Remove", update: "Update", accept: "Accept",
      acceptall: "Accept all", saved: "Saved: ", exported: "Exported: ", working: "Working…", ms: "ms",
      unit: "Township", people: "people", circle15: "15 km circle", synthetic: "synthetic demo data",
      candidate: "Candidate", newcov: "newly covered", none: "none", indicator: "Indicator", value: "Value", target: "Target" },
  };
  const COLORS = { school: "#3182bd", clinic: "#de2d26", elderly: "#756bb1", fitness: "#31a354" };
  let lang = CFG.lang === "en" ? "en" : "zh";
  const t = (k) => (T[lang][k] || k);
  const $ = (id) => document.getElementById(id);
  const withToken = (url) => url + (CFG.token ? (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(CFG.token) : "");

  async function api(path, body) {
    const opt = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const r = await fetch(withToken(path), opt);
    const ct = r.headers.get("content-type") || "";
    const data = ct.includes("json") ? await r.json() : await r.text();
    if (!r.ok) { throw new Error(data && data.error ? (lang === "zh" ? data.error.zh : data.error.en) : String(r.status)); }
    return data;
  }
  function status(text, err) { const s = $("status"); s.textContent = text || ""; s.className = "status" + (err ? " err" : ""); }
  const fmt = (x) => x === null || x === undefined ? "—" : Math.round(x).toLocaleString("zh-CN");
  const pct = (x) => x === null || x === undefined ? "—" : (100 * x).toFixed(1) + "%";
  const sgn = (x, f) => x === null || x === undefined ? "" : (x > 0 ? "+" : x < 0 ? "−" : "±") + f(Math.abs(x));

  const map = L.map("map", { preferCanvas: true, zoomControl: true });
  if (CFG.tiles) { L.tileLayer(CFG.tiles.url, { subdomains: CFG.tiles.subdomains, attribution: CFG.tiles.attribution }).addTo(map); }
  const layers = { units: L.geoJSON(null).addTo(map), circle: L.layerGroup().addTo(map), urc: L.layerGroup().addTo(map),
    uncovered: L.layerGroup().addTo(map), candidates: L.layerGroup().addTo(map), facilities: L.layerGroup().addTo(map),
    proposals: L.layerGroup().addTo(map) };
  let ST = null, SUM = null, FAC = null, service = "elderly", pending = null;
  window.covplanMap = map;
  window.covplanState = () => ({ summary: SUM, facilities: FAC, service: service, lang: lang });

  function shareColor(s) { return s === null || s === undefined ? "#ccc" : s >= 0.95 ? "#1a9850" : s >= 0.85 ? "#91cf60" : s >= 0.7 ? "#fee08b" : s >= 0.5 ? "#fc8d59" : "#d73027"; }

  function applyLang() {
    document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
    document.querySelectorAll("[data-i18n]").forEach((e) => { e.textContent = t(e.dataset.i18n); });
    document.querySelectorAll("[data-i18n-ph]").forEach((e) => { e.placeholder = t(e.dataset.i18nPh); });
    $("lang").textContent = lang === "zh" ? "EN" : "中文";
    if (ST) { fillServices(); }
    if (SUM) { renderSummary(); }
  }

  function fillServices() {
    const opts = Object.entries(ST.services).map(([k, v]) => `<option value="${k}">${lang === "zh" ? v.label : k}</option>`).join("");
    $("service").innerHTML = opts; $("service").value = service;
    $("f-service").innerHTML = opts;
  }
  function fillTypes(svc, ftype) {
    $("f-ftype").innerHTML = ST.services[svc].ftypes.map((f) => `<option value="${f.key}">${lang === "zh" ? f.label : f.key}</option>`).join("");
    if (ftype) { $("f-ftype").value = ftype; }
  }

  function renderSummary() {
    const rows = [`<tr><th>${t("service")}</th><th>${t("covered")}</th><th>${t("share")}</th><th>${t("change")}</th></tr>`];
    for (const [k, c] of Object.entries(SUM.categories)) {
      const ch = c.change || {};
      const cls = (ch.population_covered || 0) > 0 ? "up" : (ch.population_covered || 0) < 0 ? "down" : "";
      rows.push(`<tr data-service="${k}"><td>${lang === "zh" ? c.label : k}</td><td class="covered">${fmt(c.population_covered)}</td>` +
        `<td class="share">${pct(c.share_covered)}</td><td class="${cls} change">${sgn(ch.population_covered, fmt)} (${sgn(ch.share_covered, pct)})</td></tr>`);
    }
    if (SUM.urban_rural_circle) {
      const u = SUM.urban_rural_circle;
      rows.push(`<tr><td>${t("circle15")}</td><td>${fmt(u.population_covered)}</td><td>${pct(u.share_covered)}</td><td></td></tr>`);
    }
    $("services").innerHTML = rows.join("");
    const cat = SUM.categories[service];
    const units = cat ? cat.by_unit.filter((u) => u.population > 0).slice() : [];
    units.sort((a, b) => (a.share === null) - (b.share === null) || (a.share - b.share));
    $("units").innerHTML = `<tr><th>${t("unit")}</th><th>${t("covered")}</th><th>${t("share")}</th><th>${t("change")}</th></tr>` +
      units.map((u) => `<tr><td>${u.name}</td><td>${fmt(u.covered)}</td><td>${pct(u.share)}</td><td class="${u.change > 0 ? "up" : u.change < 0 ? "down" : ""}">${sgn(u.change, fmt)}</td></tr>`).join("");
    const byCode = {}; if (cat) { cat.by_unit.forEach((u) => { byCode[u.code] = u; }); }
    layers.units.setStyle((f) => ({ color: "#444", weight: 1, fillOpacity: 0.35, fillColor: shareColor((byCode[f.properties.code] || {}).share) }));
    layers.units.eachLayer((l) => { const u = byCode[l.feature.properties.code] || {}; l.bindTooltip(`${l.feature.properties.name} ${pct(u.share)}`); });
    $("undo").disabled = !SUM.can_undo; $("redo").disabled = !SUM.can_redo;
    const vs = SUM.variants.map((v) => `<option>${v}</option>`).join("");
    $("variant").innerHTML = vs; $("variant").value = SUM.variant;
    const a = $("cmp-a").value, b = $("cmp-b").value;
    $("cmp-a").innerHTML = vs; $("cmp-b").innerHTML = vs;
    if (a) { $("cmp-a").value = a; } if (b) { $("cmp-b").value = b; } else if (SUM.variants.length > 1) { $("cmp-b").value = SUM.variants[1]; }
  }

  function facIcon(p) {
    const c = COLORS[p.service] || "#666", s = p.new ? 16 : 11;
    return L.divIcon({ className: "", html: `<div class="fac-icon${p.new ? " new" : ""}" style="width:${s}px;height:${s}px;background:${c}"></div>`, iconSize: [s + 4, s + 4] });
  }
  function renderFacilities() {
    layers.facilities.clearLayers();
    for (const f of FAC.features) {
      const p = f.properties, [lon, lat] = f.geometry.coordinates;
      const m = L.marker([lat, lon], { icon: facIcon(p), draggable: true, title: p.name });
      m.options.fid = p.id;
      m.on("dragend", () => { const ll = m.getLatLng(); edit({ move: [{ id: p.id, lon: ll.lng, lat: ll.lat }] }); });
      m.bindPopup(() => facPopup(p));
      m.addTo(layers.facilities);
    }
  }
  function facPopup(p) {
    const div = document.createElement("div");
    const types = ST.services[p.service] ? ST.services[p.service].ftypes : [];
    div.innerHTML = `<b>${p.name}</b> <span class="muted">${p.id}</span><br>${p.type_label}<br>` +
      `<select class="p-ftype">${types.map((f) => `<option value="${f.key}"${f.key === p.ftype ? " selected" : ""}>${lang === "zh" ? f.label : f.key}</option>`).join("")}</select> ` +
      `<input class="p-cap" type="number" step="any" style="width:5em" value="${p.capacity === null ? "" : p.capacity}"> ${p.capacity_unit}<br>` +
      `<button class="p-update">${t("update")}</button> <button class="p-remove">${t("remove")}</button>`;
    div.querySelector(".p-remove").onclick = () => { map.closePopup(); edit({ remove: [p.id] }); };
    div.querySelector(".p-update").onclick = () => {
      const u = { id: p.id }, ft = div.querySelector(".p-ftype").value, cap = div.querySelector(".p-cap").value;
      if (ft !== p.ftype) { u.ftype = ft; } if (cap !== "" && Number(cap) !== p.capacity) { u.capacity = Number(cap); }
      map.closePopup(); edit({ upgrade: [u] });
    };
    return div;
  }

  function openAdd(lat, lng, name) {
    pending = { lat: lat, lon: lng };
    $("addform").hidden = false;
    $("f-name").value = name || (lang === "zh" ? "新增设施" : "New facility");
    $("f-service").value = service; fillTypes(service);
    $("f-capacity").value = "";
    $("f-where").textContent = `${lng.toFixed(5)}, ${lat.toFixed(5)}`;
  }

  async function edit(body) {
    status(t("working"));
    try {
      const r = await api("/api/changes", body);
      SUM = r; status(`${t("ms")}: ${r.elapsed_ms}`);
      await refresh(false);
    } catch (e) { status(e.message, true); await refresh(false); }
  }

  let refreshing = null;
  async function refresh(full) {
    if (refreshing) { await refreshing; }
    refreshing = (async () => {
      const [s, f] = await Promise.all([api("/api/summary"), api("/api/facilities")]);
      SUM = s; FAC = f; renderSummary(); renderFacilities();
      document.body.dataset.version = String(s.version);
      loadLayers(); loadChecks();
    })();
    try { await refreshing; } finally { refreshing = null; }
  }
  async function loadLayers() {
    const v = SUM.version, d = await api("/api/layers/" + service);
    if (SUM.version !== v) { return; }
    layers.uncovered.clearLayers(); layers.circle.clearLayers();
    if (d.circle) { L.geoJSON(d.circle, { style: { color: COLORS[service], weight: 1, fillOpacity: 0.12 }, interactive: false }).addTo(layers.circle); }
    for (const [lat, lon, pop, unit] of d.uncovered) {
      L.circleMarker([lat, lon], { radius: Math.min(9, 2 + Math.sqrt(pop) / 4), color: "#b00", weight: 0, fillOpacity: 0.55, interactive: true })
        .bindTooltip(`${unit}: ${fmt(pop)} ${t("people")}`).addTo(layers.uncovered);
    }
  }
  async function loadChecks() {
    const c = await api("/api/checks");
    $("checks").innerHTML = `<tr><th>${t("indicator")}</th><th>${t("value")}</th><th>${t("target")}</th></tr>` +
      c.map((r) => `<tr><td>${r.indicator}</td><td class="${r.pass === true ? "pass" : r.pass === false ? "fail" : ""}">${r.value ?? ""}</td><td>${r.target ?? ""}</td></tr>`).join("");
  }

  async function init() {
    ST = await api("/api/static");
    $("title").textContent = ST.scenario;
    if (ST.synthetic) { $("banner").hidden = false; $("banner").textContent = "合成示例数据 / synthetic demo data"; }
    layers.units.addData(ST.units);
    map.fitBounds(ST.bounds);
    if (ST.urban_rural_circle) { L.geoJSON(ST.urban_rural_circle, { style: { color: "#555", weight: 1.5, dashArray: "6 4", fill: false }, interactive: false }).addTo(layers.urc); }
    for (const c of ST.candidates || []) {
      const m = L.marker([c.lat, c.lon], { icon: L.divIcon({ className: "", html: '<div class="cand-icon" style="width:9px;height:9px"></div>', iconSize: [11, 11] }), title: c.name });
      m.options.cid = c.cid;
      m.on("click", (e) => { L.DomEvent.stopPropagation(e); openAdd(c.lat, c.lon, c.name); });
      m.addTo(layers.candidates);
    }
    L.control.layers(null, { "乡镇 / townships": layers.units, "服务圈 / circle": layers.circle, "15 km": layers.urc,
      "未覆盖 / uncovered": layers.uncovered, "候选 / candidates": layers.candidates, "设施 / facilities": layers.facilities,
      "建议 / proposals": layers.proposals }, { collapsed: true }).addTo(map);
    fillServices(); applyLang();
    map.on("click", (e) => openAdd(e.latlng.lat, e.latlng.lng));
    $("service").onchange = () => { service = $("service").value; renderSummary(); loadLayers(); };
    $("f-service").onchange = () => fillTypes($("f-service").value);
    $("f-cancel").onclick = () => { $("addform").hidden = true; };
    $("addform").onsubmit = (e) => {
      e.preventDefault();
      const a = { name: $("f-name").value, category: $("f-service").value, ftype: $("f-ftype").value, lon: pending.lon, lat: pending.lat };
      if ($("f-capacity").value !== "") { a.capacity = Number($("f-capacity").value); }
      $("addform").hidden = true; edit({ add: [a] });
    };
    $("undo").onclick = async () => { await api("/api/undo", {}); await refresh(); };
    $("redo").onclick = async () => { await api("/api/redo", {}); await refresh(); };
    $("reset").onclick = async () => { await api("/api/reset", {}); await refresh(); };
    $("lang").onclick = () => { lang = lang === "zh" ? "en" : "zh"; applyLang(); };
    $("variant").onchange = async () => { await api("/api/variants", { select: $("variant").value }); await refresh(); };
    $("newvar").onclick = async () => {
      try { await api("/api/variants", { name: $("newname").value, copy_from: $("variant").value }); $("newname").value = ""; await refresh(); }
      catch (e) { status(e.message, true); }
    };
    $("save").onclick = async () => { try { const r = await api("/api/save", {}); status(t("saved") + r.path); } catch (e) { status(e.message, true); } };
    $("export").onclick = async () => {
      status(t("working"));
      try { const r = await api("/api/export", {}); status(t("exported") + r.folder); } catch (e) { status(e.message, true); }
    };
    $("bestgo").onclick = async () => {
      status(t("working"));
      try {
        const r = await api("/api/best", { service: service, n: Number($("bestn").value) });
        layers.proposals.clearLayers();
        const items = r.proposals.map((p, i) => {
          L.circleMarker([p.lat, p.lon], { radius: 9, color: "#000", weight: 2, fillColor: "#ffd700", fillOpacity: 0.9 }).bindTooltip(`${p.rank}. ${p.name}`).addTo(layers.proposals);
          return `<div class="row">${p.rank}. ${p.name} (${lang === "zh" ? p.type_label : p.ftype}) +${fmt(p.new_covered)} <button data-i="${i}">${t("accept")}</button></div>`;
        });
        $("proposals").innerHTML = items.join("") + (r.proposals.length ? `<button id="acceptall">${t("acceptall")}</button>` : t("none"));
        const add = (ps) => { layers.proposals.clearLayers(); $("proposals").innerHTML = "";
          edit({ add: ps.map((p) => ({ name: p.name, category: p.service, ftype: p.ftype, lon: p.lon, lat: p.lat, capacity: p.capacity })) }); };
        $("proposals").querySelectorAll("button[data-i]").forEach((b) => { b.onclick = () => add([r.proposals[Number(b.dataset.i)]]); });
        if ($("acceptall")) { $("acceptall").onclick = () => add(r.proposals); }
        status("");
      } catch (e) { status(e.message, true); }
    };
    $("cmp-go").onclick = async () => {
      const r = await api(`/api/compare?a=${encodeURIComponent($("cmp-a").value)}&b=${encodeURIComponent($("cmp-b").value)}`);
      $("cmp").innerHTML = `<tr><th>${t("service")}</th><th>${r.a.variant}</th><th>${r.b.variant}</th></tr>` +
        Object.keys(r.a.categories).map((k) => `<tr><td>${lang === "zh" ? r.a.categories[k].label : k}</td>` +
          `<td>${fmt(r.a.categories[k].population_covered)} (${pct(r.a.categories[k].share_covered)})</td>` +
          `<td>${fmt(r.b.categories[k].population_covered)} (${pct(r.b.categories[k].share_covered)})</td></tr>`).join("");
    };
    await refresh(true);
    const es = new EventSource(withToken("/api/events"));
    es.onmessage = (e) => { const m = JSON.parse(e.data); if (m.type !== "hello" && (!SUM || m.version !== SUM.version)) { refresh(); } };
    document.body.dataset.ready = "1";
  }
  init().catch((e) => status(e.message, true));
})();
