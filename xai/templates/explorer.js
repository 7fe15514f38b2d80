/* The run explorer (index.html): plain JavaScript, no external resources, opened over file://.
 * window.XAI_DATA (explorer/data.js): the sample table; XAIExplorer.sample({...}) (explorer/sample{i}.js,
 * loaded by a <script> tag when a sample is opened): its photograph, labels and maps as data: URLs.
 * Every name from the data (images, classes, methods) is set as text (textContent), never as markup. */
(function () {
  "use strict";
  var D = window.XAI_DATA;
  var PAGE = 100;
  var BLEND = 0.45;
  var api = { ready: null, loaded: {}, errors: [] };
  window.XAIExplorer = api;
  if (!D) { return; }

  var $ = function (id) { return document.getElementById(id); };
  var state = {
    sortCol: -1, sortDir: 1, cls: -1, text: "", page: 0, order: null,
    sample: -1, viewCls: 0, methods: D.methods.map(function (m) { return m.name; }),
    layers: { photo: true, gt: false, pred: false, tp: true, fp: true, fn: true, map: true, outline: false },
    opacity: 0.6, cmap: Object.keys(D.colormaps)[0]
  };
  var luts = {};
  Object.keys(D.colormaps).forEach(function (name) {
    var hex = D.colormaps[name], lut = new Uint8Array(768);
    for (var i = 0; i < 768; i++) { lut[i] = parseInt(hex.substr(i * 2, 2), 16); }
    luts[name] = lut;
  });
  function rgbOf(hex) { return [1, 3, 5].map(function (k) { return parseInt(hex.substr(k, 2), 16); }); }
  var errorRgb = { tp: rgbOf(D.errorColors.tp), fp: rgbOf(D.errorColors.fp), fn: rgbOf(D.errorColors.fn) };
  var classRgb = (D.classNames || []).map(function (_n, k) { return rgbOf(D.classColors[k % D.classColors.length]); });

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    if (cls) { e.className = cls; }
    return e;
  }
  function fmt(v, digits) { return v === null || v === undefined ? "n/a" : Number(v).toFixed(digits); }
  function sampleLabel(s) { return "sample" + D.samples[s][0]; }

  /* ---- the table: per sample and class, sorted and filtered, one page at a time ---- */
  var COLS = [
    { label: "sample", text: false, value: function (r) { return D.samples[r[0]][0]; } },
    { label: "image", text: true, value: function (r) { return D.samples[r[0]][1]; } },
    { label: "class", text: true, value: function (r) { return D.classes[r[1]]; } }
  ].concat(D.columns.map(function (c, k) {
    return { label: c.label, digits: c.digits, text: false, value: function (r) { return r[k + 2]; } };
  }));

  function buildHeader() {
    var tr = document.querySelector("#samples thead tr");
    COLS.forEach(function (c, k) {
      var th = el("th", c.label, c.text ? "text" : "");
      th.setAttribute("data-col", String(k));
      th.addEventListener("click", function () { sortBy(k); });
      tr.appendChild(th);
    });
  }
  function sortBy(k) {
    state.sortDir = state.sortCol === k ? -state.sortDir : 1;  /* first click: ascending, the worst first */
    state.sortCol = k;
    state.page = 0;
    refresh();
  }
  function filtered() {
    var text = state.text.toLowerCase(), out = [];
    for (var i = 0; i < D.rows.length; i++) {
      var r = D.rows[i];
      if (state.cls >= 0 && r[1] !== state.cls) { continue; }
      if (text && D.samples[r[0]][1].toLowerCase().indexOf(text) < 0 && sampleLabel(r[0]).indexOf(text) < 0) { continue; }
      out.push(i);
    }
    if (state.sortCol >= 0) {
      var col = COLS[state.sortCol], dir = state.sortDir;
      var keys = new Array(D.rows.length);
      for (var j = 0; j < out.length; j++) { keys[out[j]] = col.value(D.rows[out[j]]); }
      out.sort(function (a, b) {
        var x = keys[a], y = keys[b];
        if (x === y) { return a - b; }
        if (x === null || x === undefined) { return 1; }  /* no number: last either way */
        if (y === null || y === undefined) { return -1; }
        return (x < y ? -1 : 1) * dir;
      });
    }
    return out;
  }
  function refresh() {
    state.order = filtered();
    renderTable();
  }
  function renderTable() {
    var order = state.order, pages = Math.max(1, Math.ceil(order.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var body = document.querySelector("#samples tbody");
    var rows = document.createDocumentFragment();
    for (var i = state.page * PAGE; i < Math.min(order.length, (state.page + 1) * PAGE); i++) {
      rows.appendChild(tableRow(order[i]));
    }
    body.textContent = "";
    body.appendChild(rows);
    document.querySelectorAll("#samples th").forEach(function (th, k) {
      if (k === state.sortCol) { th.setAttribute("aria-sort", state.sortDir > 0 ? "ascending" : "descending"); }
      else { th.removeAttribute("aria-sort"); }
    });
    $("count").textContent = order.length + " of " + D.rows.length + " rows (" + D.samples.length + " samples)";
    $("page").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev-page").disabled = state.page === 0;
    $("next-page").disabled = state.page >= pages - 1;
  }
  function tableRow(i) {
    var r = D.rows[i], tr = el("tr");
    tr.setAttribute("data-row", String(i));
    if (r[0] === state.sample && r[1] === state.viewCls) { tr.className = "current"; }
    COLS.forEach(function (c) {
      var v = c.value(r);
      var td = el("td", c.text || c.digits === undefined ? v : fmt(v, c.digits), c.text ? "text" : "");
      if (c.text) { td.title = String(v); }
      tr.appendChild(td);
    });
    tr.addEventListener("click", function () { openSample(r[0], r[1]); });
    return tr;
  }
  function buildFilters() {
    var box = $("class-filter");
    [-1].concat(D.classes.map(function (_c, k) { return k; })).forEach(function (k) {
      var b = el("button", k < 0 ? "all classes" : D.classes[k], "chip");
      b.type = "button";
      b.setAttribute("data-class", String(k));
      b.setAttribute("aria-pressed", String(k === state.cls));
      b.addEventListener("click", function () {
        state.cls = k;
        state.page = 0;
        box.querySelectorAll("button").forEach(function (x) {
          x.setAttribute("aria-pressed", String(x === b));
        });
        refresh();
      });
      box.appendChild(b);
    });
    var timer = null;
    $("text-filter").addEventListener("input", function (e) {
      clearTimeout(timer);
      timer = setTimeout(function () { state.text = e.target.value; state.page = 0; refresh(); }, 150);
    });
    $("prev-page").addEventListener("click", function () { state.page -= 1; renderTable(); });
    $("next-page").addEventListener("click", function () { state.page += 1; renderTable(); });
  }

  /* ---- one sample: its data loaded on demand, decoded to pixels, drawn on one canvas per method ---- */
  var pending = {};
  api.sample = function (data) {
    var cb = pending[data.id];
    delete pending[data.id];
    decode(data, function (decoded) {
      api.loaded[data.id] = decoded;
      if (cb) { cb(decoded); }
    });
  };
  function load(s, cb) {
    var id = sampleLabel(s), file = D.samples[s][2];
    if (api.loaded[id]) { cb(api.loaded[id]); return; }
    if (!file) { cb(null); return; }
    pending[id] = cb;
    var tag = document.createElement("script");
    tag.src = file;
    tag.onerror = function () { delete pending[id]; cb(null); };
    document.body.appendChild(tag);
  }
  function decode(data, done) {
    var jobs = [], out = { data: data, px: {}, photo: null };
    function add(key, url, gray) {
      if (!url) { return; }
      jobs.push(1);
      var img = new Image();
      img.onload = function () {
        var c = document.createElement("canvas");
        c.width = data.width; c.height = data.height;
        var ctx = c.getContext("2d");
        ctx.drawImage(img, 0, 0, data.width, data.height);
        var px = ctx.getImageData(0, 0, data.width, data.height).data;
        if (gray) {
          var g = new Uint8Array(data.width * data.height);
          for (var i = 0; i < g.length; i++) { g[i] = px[i * 4]; }
          out.px[key] = g;
        } else { out.photo = px; }
        finish();
      };
      img.onerror = function () { api.errors.push("cannot decode " + key); finish(); };
      img.src = url;
    }
    function finish() { jobs.pop(); if (!jobs.length) { done(out); } }
    add("photo", data.photo, false);
    add("gt", data.gt, true);
    add("pred", data.pred, true);
    add("confidence", data.confidence, true);
    Object.keys(data.probabilities || {}).forEach(function (c) { add("prob|" + c, data.probabilities[c], true); });
    Object.keys(data.maps).forEach(function (m) {
      Object.keys(data.maps[m]).forEach(function (c) { add("map|" + m + "|" + c, data.maps[m][c], true); });
    });
    Object.keys(data.regions).forEach(function (c) { add("region|" + c, data.regions[c], true); });
    if (!jobs.length) { done(out); }
  }
  function openSample(s, c) {
    state.sample = s;
    if (c !== undefined) { state.viewCls = c; }
    $("placeholder").hidden = true;
    $("sample-view").hidden = false;
    $("sample-title").textContent = sampleLabel(s) + ": " + D.samples[s][1];
    updateLink();
    renderTable();
    $("status").textContent = "loading...";
    load(s, function (decoded) {
      if (state.sample !== s) { return; }
      $("status").textContent = decoded ? "" : "no explorer data for this sample (written by an earlier release?): see " + D.gallery;
      current = decoded;
      renderSample();
    });
  }
  var current = null;

  function buildSampleControls() {
    var tabs = $("class-tabs");
    D.classes.forEach(function (name, k) {
      var b = el("button", name, "chip");
      b.type = "button";
      b.setAttribute("data-class", String(k));
      b.addEventListener("click", function () { state.viewCls = k; showClass(); });
      tabs.appendChild(b);
    });
    var methods = $("method-toggles");
    D.methods.forEach(function (m) {
      methods.appendChild(toggle(m.label, "method-" + m.name, state.methods.indexOf(m.name) >= 0, function (on) {
        state.methods = D.methods.map(function (x) { return x.name; }).filter(function (n) {
          return n === m.name ? on : state.methods.indexOf(n) >= 0;
        });
        updateLink();
        renderSample();
      }));
    });
    var layers = $("layer-toggles");
    var names = { photo: "photograph", gt: "ground truth", pred: "prediction", tp: "TP", fp: "FP", fn: "FN",
      map: "map", outline: "region outline" };
    Object.keys(names).forEach(function (key) {
      var t = toggle(names[key], "layer-" + key, state.layers[key], function (on) { state.layers[key] = on; renderSample(); });
      if (!D.hasTruth && (key === "gt" || key === "tp" || key === "fp" || key === "fn")) {
        t.querySelector("input").disabled = true;
        t.title = "these photographs have no mask";
      }
      layers.appendChild(t);
    });
    $("opacity").addEventListener("input", function (e) { state.opacity = e.target.value / 100; renderSample(); });
    Object.keys(D.colormaps).forEach(function (name) { $("colormap").appendChild(el("option", name)); });
    $("colormap").addEventListener("change", function (e) { state.cmap = e.target.value; renderSample(); });
  }
  function toggle(label, id, on, change) {
    var l = el("label", null, "toggle"), box = document.createElement("input");
    box.type = "checkbox"; box.id = id; box.checked = on;
    box.addEventListener("change", function () { change(box.checked); });
    l.appendChild(box);
    l.appendChild(document.createTextNode(" " + label));
    return l;
  }
  function showClass() {
    updateLink();
    renderTable();
    renderSample();
  }

  function renderSample() {
    document.querySelectorAll("#class-tabs button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(Number(b.getAttribute("data-class")) === state.viewCls));
    });
    var panels = $("panels"), notes = $("notes");
    panels.textContent = "";
    notes.textContent = "";
    if (!current) { return; }
    var methods = state.methods.length ? state.methods : [null];
    var cname = D.classes[state.viewCls];
    methods.forEach(function (m) {
      var fig = el("figure", null, "panel"), canvas = document.createElement("canvas");
      fig.style.maxWidth = "min(40em, calc(60vh * " + (current.data.width / current.data.height).toFixed(4) + "))";
      canvas.width = current.data.width; canvas.height = current.data.height;
      canvas.setAttribute("data-method", m || "");
      draw(canvas, m, cname);
      canvas.addEventListener("mousemove", function (e) { hover(canvas, e); });
      fig.appendChild(canvas);
      fig.appendChild(el("figcaption", (m ? methodLabel(m) : "no method shown") + ": class " + cname));
      panels.appendChild(fig);
      var note = m && current.data.notes[m] && current.data.notes[m][cname];
      if (note) { notes.appendChild(el("p", methodLabel(m) + ": " + note)); }
    });
  }
  function methodLabel(m) {
    for (var i = 0; i < D.methods.length; i++) { if (D.methods[i].name === m) { return D.methods[i].label; } }
    return m;
  }
  function blend(out, o, rgb, a) {
    out[o] += (rgb[0] - out[o]) * a; out[o + 1] += (rgb[1] - out[o + 1]) * a; out[o + 2] += (rgb[2] - out[o + 2]) * a;
  }
  function labelRgb(id) {
    var name = (D.classNames || [])[id];
    return name === undefined || name.toLowerCase() === "background" ? null : classRgb[id];
  }
  function draw(canvas, m, cname) {
    var w = canvas.width, h = canvas.height, n = w * h, L = state.layers, px = current.px;
    var img = new ImageData(w, h), out = img.data;
    var map = m ? px["map|" + m + "|" + cname] : null, lut = luts[state.cmap];
    var cid = (D.classNames || []).indexOf(cname), gt = px.gt, pred = px.pred, region = px["region|" + cname];
    for (var i = 0; i < n; i++) {
      var o = i * 4;
      if (L.photo && current.photo) { out[o] = current.photo[o]; out[o + 1] = current.photo[o + 1]; out[o + 2] = current.photo[o + 2]; }
      else { out[o] = out[o + 1] = out[o + 2] = 255; }
      out[o + 3] = 255;
      if (L.map && map) { var v = map[i] * 3; blend(out, o, [lut[v], lut[v + 1], lut[v + 2]], state.opacity); }
      if (L.gt && gt) { var g = labelRgb(gt[i]); if (g) { blend(out, o, g, BLEND); } }
      if (L.pred && pred) { var p = labelRgb(pred[i]); if (p) { blend(out, o, p, BLEND); } }
      if (gt && pred && cid >= 0) {
        var t = gt[i] === cid, q = pred[i] === cid;
        if (t && q && L.tp) { blend(out, o, errorRgb.tp, 0.6); }
        else if (q && !t && L.fp) { blend(out, o, errorRgb.fp, 0.6); }
        else if (t && !q && L.fn) { blend(out, o, errorRgb.fn, 0.6); }
      }
      if (L.outline && region && region[i] && isEdge(region, i, w, h)) { out[o] = out[o + 1] = out[o + 2] = 255; }
    }
    canvas.getContext("2d").putImageData(img, 0, 0);
  }
  function isEdge(r, i, w, h) {
    var x = i % w, y = (i - x) / w;
    return x === 0 || y === 0 || x === w - 1 || y === h - 1 || !r[i - 1] || !r[i + 1] || !r[i - w] || !r[i + w];
  }
  function className(id) {
    var name = (D.classNames || [])[id];
    return name === undefined ? "unlabelled (" + id + ")" : name;
  }
  function valuesAt(x, y) {
    var w = current.data.width, i = y * w + x, px = current.px, cname = D.classes[state.viewCls];
    var v = { x: x, y: y, maps: {} };
    if (px.gt) { v.truth = className(px.gt[i]); }
    if (px.pred) { v.predicted = className(px.pred[i]); }
    if (px.confidence) { v.probability = px.confidence[i] / 255; }
    var probs = Object.keys(current.data.probabilities || {}).filter(function (n) { return px["prob|" + n]; }).map(function (n) {
      return { name: n, p: px["prob|" + n][i] / 255 };
    });
    if (probs.length) { v.probabilities = probs.sort(function (a, b) { return b.p - a.p; }); }
    D.methods.forEach(function (m) {
      var map = px["map|" + m.name + "|" + cname];
      if (map) { v.maps[m.name] = map[i] / 255; }
    });
    return v;
  }
  api.valuesAt = function (x, y) { return current ? valuesAt(x, y) : null; };
  function hover(canvas, e) {
    var rect = canvas.getBoundingClientRect();
    var x = Math.min(canvas.width - 1, Math.max(0, Math.floor((e.clientX - rect.left) * canvas.width / rect.width)));
    var y = Math.min(canvas.height - 1, Math.max(0, Math.floor((e.clientY - rect.top) * canvas.height / rect.height)));
    var v = valuesAt(x, y), lines = ["pixel x=" + x + " y=" + y + " (class " + D.classes[state.viewCls] + ")"];
    if (v.truth !== undefined) { lines.push("ground truth: " + v.truth); }
    if (v.predicted !== undefined) {
      lines.push("predicted: " + v.predicted + (v.probability !== undefined ? " (probability " + v.probability.toFixed(3) + ")" : ""));
    }
    if (v.probabilities) {
      lines.push("class probabilities: " + v.probabilities.map(function (e) { return e.name + " " + e.p.toFixed(3); }).join(", "));
    }
    Object.keys(v.maps).forEach(function (m) { lines.push(methodLabel(m) + " [" + m + "]: " + v.maps[m].toFixed(3)); });
    $("hover").textContent = lines.join("\n");
  }

  /* ---- keyboard and links ---- */
  function step(delta) {
    var order = state.order, pos = -1;
    for (var k = 0; k < order.length; k++) {
      var r = D.rows[order[k]];
      if (r[0] === state.sample && (pos < 0 || r[1] === state.viewCls)) { pos = k; if (r[1] === state.viewCls) { break; } }
    }
    for (var j = pos + delta; j >= 0 && j < order.length; j += delta) {
      if (D.rows[order[j]][0] !== state.sample) {
        state.page = Math.floor(j / PAGE);
        openSample(D.rows[order[j]][0], state.cls >= 0 ? D.rows[order[j]][1] : state.viewCls);
        return;
      }
    }
  }
  document.addEventListener("keydown", function (e) {
    var t = e.target && e.target.tagName;
    if (t === "INPUT" && e.target.type !== "checkbox" && e.target.type !== "range" || t === "SELECT" || t === "TEXTAREA") { return; }
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      if (state.sample < 0 && state.order.length) { openSample(D.rows[state.order[0]][0]); }
      else { step(e.key === "ArrowDown" ? 1 : -1); }
    } else if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      if (state.sample < 0) { return; }
      var n = D.classes.length;
      state.viewCls = (state.viewCls + (e.key === "ArrowRight" ? 1 : n - 1)) % n;
      showClass();
    } else { return; }
    e.preventDefault();
  });
  function updateLink() {
    var parts = ["sample=" + encodeURIComponent(D.samples[state.sample][0]),
      "class=" + encodeURIComponent(D.classes[state.viewCls])];
    if (state.methods.length) { parts.push("method=" + state.methods.map(encodeURIComponent).join(",")); }
    var hash = "#" + parts.join("&");
    $("permalink").setAttribute("href", hash);
    if (location.hash !== hash) { history.replaceState(null, "", hash); }
  }
  function fromHash() {
    var params = {};
    location.hash.replace(/^#/, "").split("&").forEach(function (kv) {
      var k = kv.indexOf("=");
      if (k > 0) { params[kv.slice(0, k)] = decodeURIComponent(kv.slice(k + 1)); }
    });
    if (params.method !== undefined) {
      var wanted = params.method.split(",");
      state.methods = D.methods.map(function (m) { return m.name; }).filter(function (n) { return wanted.indexOf(n) >= 0; });
      D.methods.forEach(function (m) { var b = $("method-" + m.name); if (b) { b.checked = state.methods.indexOf(m.name) >= 0; } });
    }
    if (params["class"] !== undefined && D.classes.indexOf(params["class"]) >= 0) { state.viewCls = D.classes.indexOf(params["class"]); }
    if (params.sample !== undefined) {
      for (var s = 0; s < D.samples.length; s++) {
        if (String(D.samples[s][0]) === params.sample) { openSample(s); return; }
      }
    }
  }
  window.addEventListener("hashchange", fromHash);

  buildHeader();
  buildFilters();
  buildSampleControls();
  refresh();
  fromHash();
  api.ready = performance.now();
  document.body.setAttribute("data-ready", "1");
})();
