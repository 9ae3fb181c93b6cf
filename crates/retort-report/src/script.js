(function () {
  "use strict";
  // Record text lives only in escaped SVG <title> elements; this script reads it as
  // textContent and writes it back as textContent, so it never parses record text as HTML.
  var svg = document.getElementById("map-svg");
  var detail = document.getElementById("map-detail");
  var pinned = null;
  function isPoint(el) {
    return el && el.classList && el.classList.contains("pt");
  }
  function show(el) {
    var t = el.querySelector("title");
    detail.textContent = t ? t.textContent : "";
  }
  if (svg && detail) {
    svg.addEventListener("mouseover", function (e) {
      if (!pinned && isPoint(e.target)) show(e.target);
    });
    svg.addEventListener("click", function (e) {
      var el = isPoint(e.target) ? e.target : null;
      if (pinned) pinned.classList.remove("pin");
      pinned = el && el !== pinned ? el : null;
      if (pinned) {
        pinned.classList.add("pin");
        show(pinned);
      }
    });
  }
  var buttons = document.querySelectorAll(".legend button[data-c]");
  var active = null;
  buttons.forEach(function (b) {
    b.addEventListener("click", function () {
      var c = b.getAttribute("data-c");
      active = active === c ? null : c;
      buttons.forEach(function (o) {
        o.classList.toggle("on", o.getAttribute("data-c") === active);
      });
      if (!svg) return;
      svg.classList.toggle("focus", active !== null);
      svg.querySelectorAll("circle.pt").forEach(function (p) {
        p.classList.toggle("on", p.getAttribute("data-c") === active);
      });
    });
  });
  explorer();
  // Tests check this marker to know scripts did run (so an absent XSS marker means the
  // payload was inert, not that JavaScript was off).
  document.documentElement.setAttribute("data-report-ready", "1");

  // The records explorer. Its rows come from the inert JSON block #explorer-data (never
  // parsed as HTML); every value reaches the page through textContent or as a class name
  // chosen here, never through innerHTML. The view (tab, filters, sort, page, open row)
  // lives in the URL fragment, e.g. #records?view=kept&cat=3&q=python, so a view can be
  // linked to and a test can open one.
  function explorer() {
    var block = document.getElementById("explorer-data");
    var status = document.getElementById("rx-status");
    if (!block || !status) return;
    var data;
    try {
      data = JSON.parse(block.textContent);
    } catch (e) {
      status.textContent = "The records data in this page could not be read: " + e.message;
      return;
    }
    function $(id) {
      return document.getElementById(id);
    }
    function el(tag, cls, text) {
      var e = document.createElement(tag);
      if (cls) e.className = cls;
      if (text !== undefined && text !== null) e.textContent = String(text);
      return e;
    }
    function clip(s, n) {
      s = s || "";
      return s.length > n ? s.slice(0, n).replace(/\s+$/, "") + "…" : s;
    }
    function fmt(x) {
      if (x === null || x === undefined) return "—";
      return Math.round(x) === x ? String(x) : x.toFixed(2);
    }
    function preview(xs) {
      xs = xs || [];
      for (var j = 0; j < xs.length; j++) if (xs[j].k === "p") return xs[j].t;
      return xs.length ? xs[0].t : "";
    }
    var clusters = {};
    data.clusters.forEach(function (c) {
      clusters[c[0]] = { label: c[1], colour: c[2] };
    });
    var keptById = {};
    data.kept.rows.forEach(function (r) {
      keptById[r.i] = r;
    });
    function code(text) {
      return el("code", "rid", text);
    }
    function clusterCell(td, c) {
      if (c === null || c === undefined) {
        td.appendChild(el("span", "muted", "—"));
        return;
      }
      var sw = el("span", "sw");
      sw.style.background = clusters[c] ? clusters[c].colour : "#8c959f";
      td.appendChild(sw);
      td.appendChild(document.createTextNode(String(c)));
      if (clusters[c] && clusters[c].label) td.title = clusters[c].label;
    }
    function chip(cls, text) {
      return el("span", "chip " + cls, text);
    }
    var scoreCols = data.scores.map(function (name, j) {
      return {
        id: "s:" + name,
        name: name,
        num: true,
        key: function (r) {
          return r.s[j];
        },
        cell: function (td, r) {
          td.textContent = fmt(r.s[j]);
        },
      };
    });
    var views = {
      kept: {
        table: data.kept,
        noun: "kept records",
        cat: "Cluster",
        catOf: function (r) {
          return r.c === null || r.c === undefined ? "none" : String(r.c);
        },
        catName: function (v) {
          if (v === "none") return "no cluster";
          var c = clusters[v];
          return c && c.label ? v + " · " + c.label : v;
        },
        columns: [
          { id: "id", name: "Id", key: function (r) { return r.i; }, cell: function (td, r) { td.appendChild(code(r.i)); } },
          { id: "cluster", name: "Cluster", num: true, key: function (r) { return r.c; }, cell: function (td, r) { clusterCell(td, r.c); } },
          { id: "lang", name: "Lang", key: function (r) { return r.l; }, cell: function (td, r) { td.textContent = r.l || "—"; } },
          { id: "teacher", name: "Teacher", key: function (r) { return r.t; }, cell: function (td, r) { td.textContent = r.t || "—"; if (r.m) td.appendChild(el("div", "muted rx-model", r.m)); } },
        ]
          .concat(scoreCols)
          .concat([
            { id: "labels", name: "Labels", key: function (r) { return r.b.length ? r.b[0][0] + "=" + r.b[0][1] : null; }, cell: function (td, r) {
              r.b.slice(0, 3).forEach(function (kv) { td.appendChild(el("span", "pill", kv[0] + ": " + clip(kv[1], 24))); });
              if (r.b.length > 3) td.appendChild(el("span", "muted", " +" + (r.b.length - 3)));
            } },
            { id: "prompt", name: "Prompt", wide: true, key: function (r) { return preview(r.x); }, cell: function (td, r) { td.textContent = clip(preview(r.x), 180); } },
          ]),
      },
      dups: {
        table: data.dups,
        noun: "removed duplicates",
        cat: "Mode",
        catOf: function (r) { return r.d; },
        catName: function (v) { return v; },
        columns: [
          { id: "mode", name: "Mode", key: function (r) { return r.d; }, cell: function (td, r) { td.appendChild(chip("m-" + r.d, r.d)); } },
          { id: "sim", name: "Similarity", num: true, key: function (r) { return r.v; }, cell: function (td, r) { td.textContent = r.v === null ? "—" : r.v.toFixed(3); } },
          { id: "id", name: "Removed", key: function (r) { return r.i; }, cell: function (td, r) { td.appendChild(code(r.i)); } },
          { id: "text", name: "Removed text", wide: true, key: function (r) { return preview(r.x); }, cell: function (td, r) { td.textContent = clip(preview(r.x), 140); } },
          { id: "kept", name: "Kept twin", key: function (r) { return r.k; }, cell: function (td, r) { td.appendChild(code(r.k)); } },
          { id: "ktext", name: "Twin text", wide: true, key: function (r) { return twinText(r); }, cell: function (td, r) { td.textContent = clip(twinText(r), 140); } },
        ],
      },
      rejects: {
        table: data.rejects,
        noun: "rejections",
        cat: "Reason",
        catOf: function (r) { return r.r; },
        catName: function (v) { return v; },
        columns: [
          { id: "step", name: "Step", key: function (r) { return r.s; }, cell: function (td, r) { td.textContent = r.s; } },
          { id: "reason", name: "Reason", key: function (r) { return r.r; }, cell: function (td, r) { td.appendChild(el("span", "badge warn", r.r)); } },
          { id: "detail", name: "Detail", key: function (r) { return r.d; }, cell: function (td, r) { td.textContent = clip(r.d, 60); } },
          { id: "id", name: "Record", key: function (r) { return r.i; }, cell: function (td, r) { td.appendChild(code(r.i)); } },
          { id: "text", name: "Rejected text", wide: true, key: function (r) { return preview(r.x); }, cell: function (td, r) { td.textContent = clip(preview(r.x), 180); } },
        ],
      },
      fails: {
        table: data.fails,
        noun: "failures",
        cat: "Class",
        catOf: function (r) { return r.c; },
        catName: function (v) { return v; },
        columns: [
          { id: "step", name: "Step", key: function (r) { return r.s; }, cell: function (td, r) { td.textContent = r.s; } },
          { id: "class", name: "Class", key: function (r) { return r.c; }, cell: function (td, r) { td.appendChild(el("span", "badge bad", r.c)); } },
          { id: "status", name: "HTTP", num: true, key: function (r) { return r.h; }, cell: function (td, r) { td.textContent = r.h === null ? "—" : String(r.h); } },
          { id: "id", name: "Record", key: function (r) { return r.i; }, cell: function (td, r) { td.appendChild(code(r.i)); } },
          { id: "message", name: "Message", wide: true, key: function (r) { return r.x.length ? r.x[0].t : ""; }, cell: function (td, r) { td.textContent = clip(r.x.length ? r.x[0].t : "", 180); } },
        ],
      },
    };
    function twinText(r) {
      var k = keptById[r.k];
      return preview(k ? k.x : r.y);
    }

    var DEFAULTS = { view: "kept", q: "", cat: "", lang: "", score: "", min: "", max: "", sort: "", dir: "", page: "1", size: "50", open: "" };
    var st = {};
    function reset(keep) {
      Object.keys(DEFAULTS).forEach(function (k) {
        if (!keep || keep.indexOf(k) < 0) st[k] = DEFAULTS[k];
      });
    }
    reset();
    var fromHash = false;
    var h = location.hash;
    if (h.indexOf("#records?") === 0) {
      fromHash = true;
      new URLSearchParams(h.slice("#records?".length)).forEach(function (v, k) {
        if (Object.prototype.hasOwnProperty.call(DEFAULTS, k)) st[k] = v;
      });
    }
    if (!views[st.view]) st.view = "kept";
    function saveHash() {
      var p = new URLSearchParams();
      Object.keys(DEFAULTS).forEach(function (k) {
        if (st[k] !== DEFAULTS[k]) p.set(k, st[k]);
      });
      try {
        history.replaceState(null, "", "#records?" + p.toString());
      } catch (e) {
        // A browser that refuses to rewrite a file:// URL still shows the view.
      }
    }

    // Lower-cased search text of a row, built on first search.
    function hay(r) {
      if (r._h === undefined) {
        var parts = [r.i, r.k || "", r.t || "", r.m || "", r.l || "", typeof r.s === "string" ? r.s : "", r.r || "", r.d || "", r.c === undefined || r.c === null ? "" : String(r.c)];
        (r.b || []).forEach(function (kv) { parts.push(kv[0], kv[1]); });
        (r.x || []).concat(r.y || []).forEach(function (x) { parts.push(x.t); });
        r._h = parts.join("\n").toLowerCase();
      }
      return r._h;
    }
    var cache = { sig: null, list: null };
    function current() {
      var v = views[st.view];
      var sig = [st.view, st.q, st.cat, st.lang, st.score, st.min, st.max, st.sort, st.dir].join("\u0001");
      if (cache.sig === sig) return cache.list;
      var terms = st.q.toLowerCase().split(/\s+/).filter(Boolean);
      var sj = st.view === "kept" ? data.scores.indexOf(st.score) : -1;
      var lo = st.min === "" ? null : Number(st.min);
      var hi = st.max === "" ? null : Number(st.max);
      var rows = v.table.rows;
      var list = [];
      for (var i = 0; i < rows.length; i++) {
        var r = rows[i];
        if (st.cat !== "" && v.catOf(r) !== st.cat) continue;
        if (st.view === "kept") {
          if (st.lang !== "" && (r.l || "none") !== st.lang) continue;
          if (sj >= 0 && (lo !== null || hi !== null)) {
            var x = r.s[sj];
            if (x === null || x === undefined) continue;
            if (lo !== null && x < lo) continue;
            if (hi !== null && x > hi) continue;
          }
        }
        if (terms.length) {
          var t = hay(r), ok = true;
          for (var j = 0; j < terms.length && ok; j++) ok = t.indexOf(terms[j]) >= 0;
          if (!ok) continue;
        }
        list.push(i);
      }
      var col = null;
      v.columns.forEach(function (c) {
        if (c.id === st.sort) col = c;
      });
      if (col) {
        var sign = st.dir === "asc" ? 1 : -1;
        var keys = {};
        list.forEach(function (i) {
          keys[i] = col.key(rows[i]);
        });
        list.sort(function (a, b) {
          var x = keys[a], y = keys[b];
          var xn = x === null || x === undefined, yn = y === null || y === undefined;
          // Rows without the value go last whichever way the column is sorted.
          if (xn || yn) return xn === yn ? a - b : xn ? 1 : -1;
          if (x < y) return -sign;
          if (x > y) return sign;
          return a - b;
        });
      }
      cache = { sig: sig, list: list };
      return list;
    }

    function options(select, values, current) {
      select.textContent = "";
      values.forEach(function (o) {
        var opt = el("option", null, o[1]);
        opt.value = o[0];
        if (o[0] === current) opt.selected = true;
        select.appendChild(opt);
      });
    }
    function counts(rows, of) {
      var n = {};
      rows.forEach(function (r) {
        var k = of(r);
        n[k] = (n[k] || 0) + 1;
      });
      return n;
    }
    function controls() {
      var v = views[st.view];
      document.querySelectorAll(".rx-tabs button[data-view]").forEach(function (b) {
        var on = b.getAttribute("data-view") === st.view;
        b.classList.toggle("on", on);
        b.setAttribute("aria-selected", on ? "true" : "false");
      });
      $("rx-cat-name").textContent = v.cat;
      var n = counts(v.table.rows, v.catOf);
      var cats = Object.keys(n).sort(function (a, b) {
        var x = Number(a), y = Number(b);
        if (!isNaN(x) && !isNaN(y)) return x - y;
        return a < b ? -1 : a > b ? 1 : 0;
      });
      options($("rx-cat"), [["", "all"]].concat(cats.map(function (c) {
        return [c, v.catName(c) + " (" + n[c].toLocaleString("en-US") + ")"];
      })), st.cat);
      var kept = st.view === "kept";
      $("rx-lang-box").hidden = !kept;
      $("rx-score-box").hidden = !kept || data.scores.length === 0;
      if (kept) {
        var ln = counts(v.table.rows, function (r) { return r.l || "none"; });
        options($("rx-lang"), [["", "all"]].concat(Object.keys(ln).sort().map(function (l) {
          return [l, (l === "none" ? "unknown" : l) + " (" + ln[l].toLocaleString("en-US") + ")"];
        })), st.lang);
        options($("rx-score"), [["", "—"]].concat(data.scores.map(function (s) { return [s, s]; })), st.score);
      }
      $("rx-q").value = st.q;
      $("rx-min").value = st.min;
      $("rx-max").value = st.max;
      $("rx-size").value = st.size;
    }

    function section(box, x) {
      var s = el("div", "rx-sec");
      var head = el("div", "ex-k", x.h);
      if (x.n) head.appendChild(el("span", "rx-cut", "cut · " + x.n.toLocaleString("en-US") + " characters in full"));
      s.appendChild(head);
      s.appendChild(el("div", "rx-text k-" + x.k, x.t));
      box.appendChild(s);
    }
    function metaLine(box, pairs) {
      var m = el("div", "rx-meta");
      pairs.forEach(function (p) {
        if (p[1] === null || p[1] === undefined || p[1] === "") return;
        var b = el("span", "pill", p[0] + ": ");
        b.appendChild(el("b", null, p[1]));
        m.appendChild(b);
      });
      box.appendChild(m);
    }
    function recordBox(box, r) {
      var pairs = [["step", r.st], ["teacher", r.t], ["model", r.m], ["cluster", r.c === null ? null : views.kept.catName(String(r.c))], ["language", r.l]];
      data.scores.forEach(function (name, j) {
        if (r.s[j] !== null) pairs.push([name, fmt(r.s[j])]);
      });
      r.b.forEach(function (kv) { pairs.push(kv); });
      metaLine(box, pairs);
      r.x.forEach(function (x) { section(box, x); });
    }
    function detail(r) {
      var box = el("div", "rx-detail");
      if (st.view === "kept") {
        recordBox(box, r);
      } else if (st.view === "dups") {
        var cols = el("div", "cols");
        var a = el("div");
        var head = el("h3", null, "Removed ");
        head.appendChild(code(r.i));
        a.appendChild(head);
        r.x.forEach(function (x) { section(a, x); });
        var b = el("div");
        var hb = el("h3", null, "Kept twin ");
        hb.appendChild(code(r.k));
        b.appendChild(hb);
        var twin = keptById[r.k];
        if (twin) recordBox(b, twin);
        else {
          b.appendChild(el("p", "note", "The twin is not among the records listed here; this is the text the dedup step compared."));
          r.y.forEach(function (x) { section(b, x); });
        }
        cols.appendChild(a);
        cols.appendChild(b);
        box.appendChild(cols);
      } else if (st.view === "rejects") {
        metaLine(box, [["step", r.s], ["reason", r.r], ["detail", r.d], ["record", r.i]]);
        r.x.forEach(function (x) { section(box, x); });
      } else {
        metaLine(box, [["step", r.s], ["class", r.c], ["HTTP status", r.h === null ? null : String(r.h)], ["record", r.i]]);
        r.x.forEach(function (x) { section(box, x); });
      }
      return box;
    }

    // `save` is false for the first render, so merely opening (or reloading) the page
    // does not rewrite its URL and jump to this section next time.
    function render(save) {
      var v = views[st.view];
      var rows = v.table.rows;
      var list = current();
      var size = Math.max(1, parseInt(st.size, 10) || 50);
      var pages = Math.max(1, Math.ceil(list.length / size));
      var page = Math.min(pages, Math.max(1, parseInt(st.page, 10) || 1));
      if (st.open) {
        for (var p = 0; p < list.length; p++) {
          if (rows[list[p]].i === st.open) {
            page = Math.floor(p / size) + 1;
            break;
          }
        }
      }
      st.page = String(page);
      var table = $("rx-table");
      var thead = table.tHead, tbody = table.tBodies[0];
      thead.textContent = "";
      tbody.textContent = "";
      var hr = el("tr");
      hr.appendChild(el("th", "rx-tog"));
      v.columns.forEach(function (c) {
        var th = el("th", (c.num ? "n " : "") + "rx-sortable", c.name);
        th.setAttribute("data-sort", c.id);
        if (st.sort === c.id) {
          th.classList.add(st.dir === "asc" ? "asc" : "desc");
          th.setAttribute("aria-sort", st.dir === "asc" ? "ascending" : "descending");
        }
        hr.appendChild(th);
      });
      thead.appendChild(hr);
      var ncol = v.columns.length + 1;
      var start = (page - 1) * size;
      var shown = list.slice(start, start + size);
      if (!shown.length) {
        var tr0 = el("tr");
        var td0 = el("td", "note", v.table.rows.length ? "No row matches these filters." : "There are no " + v.noun + " in this run.");
        td0.colSpan = ncol;
        tr0.appendChild(td0);
        tbody.appendChild(tr0);
      }
      shown.forEach(function (i) {
        var r = rows[i];
        var tr = el("tr", "rx-row");
        tr.setAttribute("data-i", String(i));
        if (st.view === "kept") tr.setAttribute("data-c", r.c === null ? "none" : String(r.c));
        var open = st.open !== "" && r.i === st.open;
        var tog = el("td", "rx-tog", open ? "▾" : "▸");
        tr.appendChild(tog);
        v.columns.forEach(function (c) {
          var td = el("td", (c.num ? "n" : "") + (c.wide ? " rx-wide" : ""));
          c.cell(td, r);
          tr.appendChild(td);
        });
        tbody.appendChild(tr);
        if (open) {
          tr.classList.add("open");
          var dr = el("tr", "rx-open");
          var dtd = el("td");
          dtd.colSpan = ncol;
          dtd.appendChild(detail(r));
          dr.appendChild(dtd);
          tbody.appendChild(dr);
        }
      });
      var from = list.length ? start + 1 : 0;
      var to = Math.min(list.length, start + size);
      var msg = from.toLocaleString("en-US") + "–" + to.toLocaleString("en-US") + " of " + list.length.toLocaleString("en-US") + " matching " + v.noun;
      if (list.length !== rows.length) msg += " (of " + rows.length.toLocaleString("en-US") + ")";
      if (v.table.total > rows.length) msg += ". This page lists the first " + rows.length.toLocaleString("en-US") + " of " + v.table.total.toLocaleString("en-US") + "; the run directory holds them all";
      status.textContent = msg + ".";
      $("rx-page").textContent = "page " + page.toLocaleString("en-US") + " of " + pages.toLocaleString("en-US");
      $("rx-prev").disabled = page <= 1;
      $("rx-next").disabled = page >= pages;
      var cut = rows.some(function (r) {
        return (r.x || []).some(function (x) { return x.n; });
      });
      $("rx-cutnote").textContent = cut
        ? "Long texts are cut to keep this page small (about " + data.budget.toLocaleString("en-US") + " bytes of text per row); a cut text says how long it is in full."
        : "";
      if (save !== false) saveHash();
    }
    function change(fn) {
      return function (e) {
        fn(e);
        render();
      };
    }
    document.querySelectorAll(".rx-tabs button[data-view]").forEach(function (b) {
      b.addEventListener("click", change(function () {
        var q = st.q, size = st.size;
        reset();
        st.view = b.getAttribute("data-view");
        st.q = q;
        st.size = size;
        controls();
      }));
    });
    var typing = null;
    $("rx-q").addEventListener("input", function () {
      clearTimeout(typing);
      typing = setTimeout(function () {
        st.q = $("rx-q").value;
        st.page = "1";
        render();
      }, 150);
    });
    [["rx-cat", "cat"], ["rx-lang", "lang"], ["rx-score", "score"], ["rx-min", "min"], ["rx-max", "max"], ["rx-size", "size"]].forEach(function (p) {
      $(p[0]).addEventListener("change", change(function () {
        st[p[1]] = $(p[0]).value;
        st.page = "1";
      }));
    });
    $("rx-reset").addEventListener("click", change(function () {
      reset(["view", "size"]);
      controls();
    }));
    $("rx-prev").addEventListener("click", change(function () {
      st.page = String(Number(st.page) - 1);
      st.open = "";
    }));
    $("rx-next").addEventListener("click", change(function () {
      st.page = String(Number(st.page) + 1);
      st.open = "";
    }));
    $("rx-table").addEventListener("click", function (e) {
      var th = e.target.closest("th[data-sort]");
      if (th) {
        var id = th.getAttribute("data-sort");
        var col = views[st.view].columns.filter(function (c) { return c.id === id; })[0];
        if (st.sort === id) st.dir = st.dir === "asc" ? "desc" : "asc";
        else {
          st.sort = id;
          st.dir = col && col.num ? "desc" : "asc";
        }
        render();
        return;
      }
      // A click that ends a text selection inside an open row is not a toggle.
      if (String(window.getSelection ? window.getSelection() : "") !== "") return;
      var tr = e.target.closest("tr.rx-row");
      if (!tr) return;
      var r = views[st.view].table.rows[Number(tr.getAttribute("data-i"))];
      st.open = st.open === r.i ? "" : r.i;
      render();
    });
    controls();
    render(false);
    if (fromHash) {
      var sec = document.getElementById("records");
      if (sec && sec.scrollIntoView) sec.scrollIntoView();
    }
    document.documentElement.setAttribute("data-explorer-ms", String(Math.round(performance.now())));
  }
})();
