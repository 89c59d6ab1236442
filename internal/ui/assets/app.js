// redback recovery timeline: draws GET /api/v1/timeline; runs nothing.
"use strict";
(function () {
  const $ = (s, e) => (e || document).querySelector(s);
  const NS = "http://www.w3.org/2000/svg";
  const token = (new URLSearchParams(location.hash.slice(1))).get("token") || "";
  let doc = null;            // the timeline document
  let view = null;           // {from, to} in ms
  let selected = null;       // {source, kind: "moment"|"event"|"snapshot", t, ev, snap}

  const ms = (s) => s ? Date.parse(s) : NaN;
  const iso = (t) => new Date(t).toISOString();
  const local = (t) => new Date(t).toISOString().replace("T", " ").replace("Z", " UTC");
  function ago(sec) {
    if (!isFinite(sec) || sec < 0) return "–";
    if (sec < 90) return Math.round(sec) + " s";
    if (sec < 5400) return Math.round(sec / 60) + " min";
    if (sec < 172800) return (sec / 3600).toFixed(1) + " h";
    return (sec / 86400).toFixed(1) + " days";
  }
  function bytes(n) {
    const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i ? n.toFixed(1) : n) + " " + u[i];
  }
  function el(tag, attrs, text) {
    const e = tag.startsWith("svg:") ? document.createElementNS(NS, tag.slice(4)) : document.createElement(tag);
    for (const k in attrs || {}) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function quote(s) { return /^[A-Za-z0-9_\/:.\-@=,+]+$/.test(s) ? s : "'" + s.replace(/'/g, "'\\''") + "'"; }

  async function load() {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    try {
      const r = await fetch("api/v1/timeline", { headers, cache: "no-store" });
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      doc = body;
      $("#status").textContent = doc.sources.length ? "" : "no sources";
      $("#status").hidden = doc.sources.length > 0;
      $("#now").textContent = "as of " + local(ms(doc.now));
      if (!view) fit();
      render();
    } catch (e) {
      $("#status").hidden = false;
      $("#status").textContent = "cannot read the timeline: " + e.message;
    }
  }

  // extent is the span of everything drawn.
  function extent() {
    let lo = Infinity, hi = -Infinity;
    const see = (t) => { if (isFinite(t)) { lo = Math.min(lo, t); hi = Math.max(hi, t); } };
    for (const s of doc.sources) {
      s.windows.forEach((w) => { if (!w.problem) { see(ms(w.from)); see(ms(w.to)); } });
      s.snapshots.forEach((x) => see(ms(x.end_time)));
      s.drills.forEach((d) => see(ms(d.time)));
      s.events.forEach((e) => see(ms(e.time)));
    }
    if (!isFinite(lo)) { hi = ms(doc.now); lo = hi - 3600e3; }
    return { lo, hi };
  }
  function fit() {
    const { lo, hi } = extent();
    const pad = Math.max((hi - lo) * 0.04, 2000);
    view = { from: lo - pad, to: hi + pad };
  }
  function zoom(spanSec, center) {
    const c = center !== undefined ? center : (selected ? selected.t : (view.from + view.to) / 2);
    const span = spanSec * 1000;
    view = { from: c - span / 2, to: c + span / 2 };
    render();
  }

  function render() {
    const root = $("#sources");
    root.textContent = "";
    for (const s of doc.sources) root.appendChild(drawSource(s));
    if (selected) showDetail();
  }

  function badge(text, cls, title) { const b = el("span", { class: "badge " + (cls || "") }, text); if (title) b.title = title; return b; }

  function drawSource(s) {
    const box = el("section", { class: "source", "data-source": s.name });
    const head = el("div", { class: "source-head" });
    head.appendChild(el("h2", {}, s.name));
    head.appendChild(el("span", { class: "addr" }, (s.address || "") + "  →  " + s.repo));
    box.appendChild(head);
    const h = s.health, hb = el("div", { class: "health" });
    hb.appendChild(badge(h.healthy ? "healthy" : "attention", h.healthy ? "ok" : "bad", (h.reasons || []).join("\n")));
    if (h.last_snapshot) {
      const late = h.expected_interval_seconds > 0 && h.last_snapshot_age_seconds > 2 * h.expected_interval_seconds;
      hb.appendChild(badge("last snapshot " + ago(h.last_snapshot_age_seconds) + " ago" +
        (h.expected_interval_seconds > 0 ? " (every " + ago(h.expected_interval_seconds) + ")" : ""), late ? "bad" : "ok"));
    } else hb.appendChild(badge("no snapshot", "bad"));
    if (s.shipping) {
      const sh = s.shipping;
      const lag = sh.live ? "lag " + ago(sh.lag_seconds) + (sh.lag_bytes ? " / " + bytes(sh.lag_bytes) : "") : "last shipped " + ago(sh.lag_seconds) + " ago";
      hb.appendChild(badge(lag + (sh.following ? " · following " + sh.following : ""), sh.live && !sh.connected ? "bad" : "ok", (sh.reasons || []).join("\n")));
    } else hb.appendChild(badge("no log shipping", "warn"));
    if (h.last_drill) {
      const d = h.last_drill;
      hb.appendChild(badge("last drill " + ago((ms(doc.now) - ms(d.time)) / 1000) + " ago: " + (d.ok ? "passed" : "FAILED") + ", RTO " + d.rto_seconds.toFixed(1) + " s" +
        (d.rto_objective_seconds ? " (objective " + ago(d.rto_objective_seconds) + ")" : ""), d.ok ? "ok" : "bad", d.detail || ""));
    } else hb.appendChild(badge("no drill yet", "warn"));
    box.appendChild(hb);
    box.appendChild(drawAxis(s));
    box.appendChild(tables(s));
    for (const p of s.problems || []) box.appendChild(el("p", { class: "problem" }, "problem: " + p));
    return box;
  }

  function drawAxis(s) {
    const W = Math.max(400, $("#sources").clientWidth - 30), H = 120, L = 70, R = 10;
    const svg = el("svg:svg", { class: "axis", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", "data-source": s.name });
    const x = (t) => L + (t - view.from) / (view.to - view.from) * (W - L - R);
    const t = (px) => view.from + (px - L) / (W - L - R) * (view.to - view.from);
    const clip = (a, b) => [Math.max(L, x(a)), Math.min(W - R, x(b))];
    const lanes = { windows: 18, snapshots: 46, drills: 66, events: 86 };
    for (const k in lanes) svg.appendChild(el("svg:text", { class: "lane", x: 4, y: lanes[k] + 4 }, k));
    // ticks
    const span = view.to - view.from, steps = [1e3, 5e3, 10e3, 30e3, 60e3, 300e3, 600e3, 1800e3, 3600e3, 6 * 3600e3, 86400e3];
    const step = steps.find((v) => span / v <= 8) || 86400e3;
    for (let v = Math.ceil(view.from / step) * step; v <= view.to; v += step) {
      svg.appendChild(el("svg:line", { class: "tick", x1: x(v), x2: x(v), y1: 6, y2: 100 }));
      const d = new Date(v).toISOString();
      svg.appendChild(el("svg:text", { class: "label", x: x(v) + 2, y: 114 }, step >= 86400e3 ? d.slice(0, 10) : step >= 60e3 ? d.slice(5, 16).replace("T", " ") : d.slice(11, 19)));
    }
    for (const w of s.windows) {
      if (w.problem) continue;
      const [a, b] = clip(ms(w.from), ms(w.to));
      if (b < L || a > W - R) continue;
      const r = el("svg:rect", { class: "window" + (w.reset ? " reset" : ""), x: a, y: 10, width: Math.max(2, b - a), height: 16, "data-generation": w.generation });
      r.appendChild(el("svg:title", {}, `window ${w.generation}${w.reset ? " (RESET: " + w.reset_reason + ")" : ""}: ${local(ms(w.from))} → ${local(ms(w.to))}, ${w.commands} commands`));
      svg.appendChild(r);
    }
    for (const w of s.windows) {
      for (const u of w.uncertain || []) {
        const [a, b] = clip(ms(u.from), ms(u.to));
        if (b < L || a > W - R) continue;
        const r = el("svg:rect", { class: "uncertain", x: a, y: 10, width: Math.max(2, b - a), height: 16 });
        r.appendChild(el("svg:title", {}, `times uncertain: ${local(ms(u.from))} → ${local(ms(u.to))} (commands re-sent after a reconnect: only bounded in time)`));
        svg.appendChild(r);
      }
    }
    for (const g of s.gaps) {
      const [a, b] = clip(ms(g.from), ms(g.to));
      if (b < L || a > W - R) continue;
      const r = el("svg:rect", { class: "gap", x: a, y: 10, width: Math.max(2, b - a), height: 16 });
      r.appendChild(el("svg:title", {}, "gap: " + g.reason));
      svg.appendChild(r);
    }
    for (const sn of s.snapshots) {
      const px = x(ms(sn.end_time));
      if (px < L || px > W - R) continue;
      const r = el("svg:rect", { class: "snapshot" + (sn.keep ? " kept" : "") + (sn.from_log ? " from-log" : ""), x: px - 2, y: 38, width: 4, height: 16, "data-id": sn.id });
      r.appendChild(el("svg:title", {}, `snapshot ${sn.id}: ${sn.census.keys} keys, ${bytes(sn.object.raw_bytes)}` + (sn.from_log ? `, synthesized from the log at offset ${sn.source.offset} (no fork on the source)` : "")));
      r.addEventListener("click", (e) => { e.stopPropagation(); select({ source: s, kind: "snapshot", t: ms(sn.end_time), snap: sn }); });
      svg.appendChild(r);
    }
    for (const d of s.drills) {
      const px = x(ms(d.time));
      if (px < L || px > W - R) continue;
      const r = el("svg:path", { class: "drill" + (d.ok ? "" : " failed"), d: `M${px} 59 l6 7 l-6 7 l-6 -7 z` });
      r.appendChild(el("svg:title", {}, `drill ${d.ok ? "passed" : "failed"}: RTO ${d.rto_seconds.toFixed(1)} s`));
      svg.appendChild(r);
    }
    s.events.forEach((ev, i) => {
      const px = x(ms(ev.time));
      if (px < L || px > W - R) return;
      const r = el("svg:path", { class: "event", d: `M${px} 80 l6 12 l-12 0 z`, "data-command": ev.command, "data-index": i });
      r.appendChild(el("svg:title", {}, `${ev.text} at ${local(ms(ev.time))}`));
      r.addEventListener("click", (e) => { e.stopPropagation(); select({ source: s, kind: "event", t: ms(ev.time), ev }); });
      svg.appendChild(r);
    });
    if (selected && selected.source.name === s.name) {
      const px = x(selected.t);
      if (px >= L && px <= W - R) svg.appendChild(el("svg:line", { class: "cursor", x1: px, x2: px, y1: 4, y2: 100 }));
    }
    svg.addEventListener("click", (e) => {
      const r = svg.getBoundingClientRect();
      const px = (e.clientX - r.left) / r.width * W;
      if (px >= L) select({ source: s, kind: "moment", t: Math.round(t(px)) });
    });
    svg.addEventListener("wheel", (e) => {
      e.preventDefault();
      const r = svg.getBoundingClientRect();
      const c = t((e.clientX - r.left) / r.width * W), f = e.deltaY < 0 ? 0.6 : 1 / 0.6;
      const from = c - (c - view.from) * f, to = c + (view.to - c) * f;
      if (to - from >= 2000 && to - from <= 400 * 86400e3) { view = { from, to }; render(); }
    }, { passive: false });
    return svg;
  }

  function tables(s) {
    const wrap = el("div");
    if (s.events.length) {
      const t = el("table", { class: "events" });
      t.appendChild(el("tr")).append(el("th", {}, "event"), el("th", {}, "time (UTC)"), el("th", {}, "generation / offset"), el("th", {}, "db"));
      s.events.forEach((ev, i) => {
        const tr = el("tr", { class: "pick event-row", "data-command": ev.command, "data-index": i });
        const what = ev.commands > 1 ? `${ev.command} burst: ${ev.commands} commands, ${ev.keys} keys` : ev.text;
        tr.append(el("td", {}, what), el("td", {}, local(ms(ev.time))), el("td", {}, ev.generation + " / " + ev.offset), el("td", {}, String(ev.db)));
        if (selected && selected.ev === ev) tr.classList.add("sel");
        tr.addEventListener("click", () => select({ source: s, kind: "event", t: ms(ev.time), ev }));
        t.appendChild(tr);
      });
      wrap.appendChild(t);
    }
    const det = el("details");
    det.appendChild(el("summary", {}, `${s.snapshots.length} snapshots, ${s.windows.length} windows, ${s.gaps.length} gaps, ${s.drills.length} drills`));
    const t = el("table", { class: "snapshots" });
    t.appendChild(el("tr")).append(el("th", {}, "snapshot"), el("th", {}, "time (UTC)"), el("th", {}, "keys"), el("th", {}, "size"), el("th", {}, "verified"), el("th", {}, "digest"), el("th", {}, ""));
    for (const sn of s.snapshots.slice(0, 200)) {
      const tr = el("tr", { class: "pick snapshot-row", "data-id": sn.id });
      const flags = [sn.keep ? "kept" : "", (s.pinned || []).includes(sn.id) ? "pinned" : "", sn.from_log ? "from the log of " + sn.generation + " at offset " + sn.source.offset : sn.generation ? "base of " + sn.generation : ""].filter(Boolean).join(", ");
      tr.append(el("td", {}, sn.id), el("td", {}, local(ms(sn.end_time))), el("td", {}, String(sn.census.keys)), el("td", {}, bytes(sn.object.raw_bytes) + " (" + bytes(sn.object.stored_bytes) + " stored)"),
        el("td", {}, sn.verified ? "yes" : "no"), el("td", {}, (sn.digest || "").slice(0, 12)), el("td", {}, flags));
      tr.addEventListener("click", () => select({ source: s, kind: "snapshot", t: ms(sn.end_time), snap: sn }));
      t.appendChild(tr);
    }
    det.appendChild(t);
    const w = el("table", { class: "windows" });
    w.appendChild(el("tr")).append(el("th", {}, "window (generation)"), el("th", {}, "from"), el("th", {}, "to"), el("th", {}, "commands"), el("th", {}, "state"));
    for (const x of s.windows) {
      const state = x.problem ? "not restorable: " + x.problem : (x.reset ? "RESET (" + (x.reset_reason || "") + "); " : "") + (x.ended ? "ended" + (x.end_reason ? " (" + x.end_reason + ")" : "") : "live") +
        (x.gaps || []).filter((g) => !g.overlap).map((g) => "; " + (g.reason || `log missing ${g.from}-${g.to}`)).join("");
      w.appendChild(el("tr")).append(el("td", {}, x.generation), el("td", {}, x.problem ? "–" : local(ms(x.from))), el("td", {}, x.problem ? "–" : local(ms(x.to))), el("td", {}, String(x.commands)), el("td", {}, state));
    }
    for (const g of s.gaps) w.appendChild(el("tr", { class: "gap-row" })).append(el("td", {}, "gap"), el("td", {}, local(ms(g.from))), el("td", {}, local(ms(g.to))), el("td", {}, ""), el("td", {}, g.reason));
    det.appendChild(w);
    wrap.appendChild(det);
    return wrap;
  }

  function select(sel) { selected = sel; render(); }

  // point describes what a selection restores.
  function point(sel) {
    const s = sel.source, facts = [];
    const rto = s.health.rto_estimate_seconds;
    if (sel.kind === "event") {
      const ev = sel.ev, w = s.windows.find((x) => x.generation === ev.generation);
      facts.push(`restores the state just before ${ev.text} (${ev.command === "DEL" || ev.command === "UNLINK" ? `the first of ${ev.commands} commands deleting ${ev.keys} keys, ` : ""}received ${local(ms(ev.time))}, offset ${ev.offset}, db ${ev.db})`);
      if (w) facts.push(`from snapshot ${w.base_snapshot} plus ${ev.commands_before} logged commands of generation ${ev.generation}`);
      return { title: `${ev.command} at ${local(ms(ev.time))}`, args: ev.point, facts, rto,
        query: "before_command=" + encodeURIComponent(ev.command) + "&after=" + encodeURIComponent(ev.time) };
    }
    if (sel.kind === "snapshot") {
      const sn = sel.snap;
      facts.push(`restores snapshot ${sn.id} as of ${local(ms(sn.end_time))}: ${sn.census.keys} keys, ${bytes(sn.object.raw_bytes)}, digest ${sn.digest.slice(0, 12)}…`);
      return { title: "snapshot " + sn.id, args: "--snapshot " + sn.id, facts, rto };
    }
    const at = sel.t, w = s.windows.find((x) => !x.problem && ms(x.from) <= at && at <= ms(x.to));
    if (w) {
      const f = ms(w.to) > ms(w.from) ? (at - ms(w.from)) / (ms(w.to) - ms(w.from)) : 1;
      const u = (w.uncertain || []).find((x) => ms(x.from) < at && at < ms(x.to));
      if (u) {
        facts.push(`${local(at)} falls where the log only bounds when commands ran (between ${local(ms(u.from))} and ${local(ms(u.to))}: re-sent by the source after the shipper reconnected)`);
        facts.push(`--uncertain earliest restores the state before those commands (exact at ${local(ms(u.from))}); --uncertain latest the state after them (exact at ${local(ms(u.to))})`);
        return { title: "moment " + local(at), args: "--at " + iso(at) + " --uncertain earliest", facts, rto, query: "at=" + encodeURIComponent(iso(at)) };
      }
      facts.push(`restores the state after the last command received at or before ${local(at)}`);
      facts.push(`from snapshot ${w.base_snapshot} plus about ${Math.round(w.commands * Math.min(1, Math.max(0, f)))} of generation ${w.generation}'s ${w.commands} logged commands`);
      return { title: "moment " + local(at), args: "--at " + iso(at), facts, rto, query: "at=" + encodeURIComponent(iso(at)) };
    }
    const before = s.snapshots.filter((x) => x.verified && ms(x.end_time) <= at).sort((a, b) => ms(b.end_time) - ms(a.end_time))[0];
    const gap = s.gaps.find((g) => ms(g.from) < at && at < ms(g.to));
    facts.push(`no shipped log covers ${local(at)}` + (gap ? ` (${gap.reason})` : ""));
    if (before) {
      facts.push(`the nearest earlier point is snapshot ${before.id} at ${local(ms(before.end_time))}`);
      return { title: "moment " + local(at), args: "--snapshot " + before.id, facts, rto };
    }
    return { title: "moment " + local(at), args: "", facts, rto };
  }

  function defaultTarget(s) {
    // Never carry a (masked) password into the command: REDISCLI_AUTH supplies it.
    return (s.address || "redis://127.0.0.1:6379").replace(/:\/\/([^:@\/]*):[^@\/]*@/, "://$1@").replace(/:\/\/@/, "://");
  }

  function showDetail() {
    const p = point(selected), s = selected.source;
    const box = $("#detail");
    box.hidden = false;
    $("#detail-title").textContent = s.name + ": " + p.title;
    const facts = $("#facts");
    facts.textContent = "";
    for (const f of p.facts) facts.appendChild(el("li", {}, f));
    facts.appendChild(el("li", {}, p.rto > 0 ? `estimated RTO ≈ ${p.rto.toFixed(1)} s (the last passed drill)` : "no passed drill yet: the RTO is unknown (run redback drill)"));
    const target = $("#target");
    if (!target.dataset.edited || target.dataset.source !== s.name) { target.value = defaultTarget(s); target.dataset.source = s.name; }
    $("#command").textContent = p.args ? `${s.restore} ${p.args} --to-redis ${quote(target.value)}` : "(nothing restores this moment)";
    if (p.query) exact(selected, s, p.query);
  }

  // exact asks the server to plan the selected point as a restore would
  // and replaces the estimate with what it found.
  async function exact(sel, s, query) {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    let line;
    try {
      const r = await fetch(`api/v1/point?name=${encodeURIComponent(s.name)}&${query}`, { headers, cache: "no-store" });
      const f = await r.json();
      if (!r.ok) throw new Error(f.error || r.statusText);
      if (f.uncertain) line = `exact: ${f.uncertain.commands} commands of generation ${f.uncertain.generation} ran at times only known to lie between ${local(ms(f.uncertain.from))} and ${local(ms(f.uncertain.to))}`;
      else line = `exact: base snapshot ${f.base_snapshot} (${local(ms(f.base_time))}), then ${bytes(f.log_bytes)} of log from ${f.segments} segments of generation ${f.generation}, to offset ${f.offset}; last command received ${local(ms(f.time))}`;
    } catch (e) {
      line = "the server could not plan this point: " + e.message;
    }
    if (selected !== sel) return;
    let li = $("#facts li.exact");
    if (!li) { li = el("li", { class: "exact" }); $("#facts").prepend(li); }
    li.textContent = line;
  }

  $("#target").addEventListener("input", (e) => { e.target.dataset.edited = "1"; if (selected) showDetail(); });
  $("#copy").addEventListener("click", async () => {
    const text = $("#command").textContent;
    try { await navigator.clipboard.writeText(text); $("#copy").textContent = "copied"; }
    catch (e) {
      const r = document.createRange(); r.selectNodeContents($("#command"));
      const sel = getSelection(); sel.removeAllRanges(); sel.addRange(r); $("#copy").textContent = "selected: press Ctrl+C";
    }
    setTimeout(() => { $("#copy").textContent = "copy"; }, 1500);
  });
  document.querySelectorAll("#zoom button[data-span]").forEach((b) => b.addEventListener("click", () => zoom(+b.dataset.span)));
  $("#fit").addEventListener("click", () => { fit(); render(); });
  $("#reload").addEventListener("click", load);
  window.addEventListener("resize", () => { if (doc) render(); });
  load();
  setInterval(load, 15000);
})();
