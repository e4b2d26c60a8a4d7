// The troupe dashboard's page: plain DOM and SVG, no library. It reads the
// JSON API under api/ and the live event stream (server-sent events), and
// never puts data from the server into the page as HTML.
'use strict';

(() => {
  const SVG = 'http://www.w3.org/2000/svg';
  const state = {
    info: null,
    graph: null,
    stats: null,
    view: 'graph',
    arg: '',
    events: null,      // the EventSource
    paused: false,
    timeline: '',      // the correlation id shown
    layout: null,      // node id -> {x, y, w, h}
  };

  // ---- helpers ----

  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const kid of kids.flat()) {
      if (kid === null || kid === undefined || kid === false) continue;
      el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
    }
    return el;
  }

  function s(tag, attrs, ...kids) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v);
    }
    for (const kid of kids.flat()) if (kid) el.append(kid);
    return el;
  }

  const $ = (sel) => document.querySelector(sel);

  function fmtRate(r) {
    if (!r) return '0/s';
    if (r >= 100) return Math.round(r) + '/s';
    if (r >= 1) return r.toFixed(1) + '/s';
    return r.toFixed(2) + '/s';
  }

  function fmtMs(ms) {
    if (ms < 1) return ms.toFixed(2) + ' ms';
    if (ms < 1000) return ms.toFixed(ms < 10 ? 1 : 0) + ' ms';
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  }

  function fmtTime(t) {
    const d = new Date(t);
    if (isNaN(d)) return '';
    return d.toLocaleTimeString([], { hour12: false }) + '.' + String(d.getMilliseconds()).padStart(3, '0');
  }

  function short(str, n) {
    return str.length > n ? str.slice(0, n - 1) + '…' : str;
  }

  function toast(msg, bad) {
    const t = $('#toast');
    t.textContent = msg;
    t.className = 'toast' + (bad ? ' bad' : '');
    t.hidden = false;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.hidden = true; }, 4000);
  }

  function setStatus(msg, bad) {
    const st = $('#status');
    st.textContent = msg;
    st.className = 'status' + (bad ? ' bad' : '');
  }

  async function api(path, opts) {
    const res = await fetch('api/' + path, opts);
    let body = null;
    try { body = await res.json(); } catch (_) { /* not JSON */ }
    if (!res.ok) {
      const err = new Error((body && body.error) || res.status + ' ' + res.statusText);
      err.status = res.status;
      throw err;
    }
    return body;
  }

  // ---- the admin token ----

  function takeTokenFromURL() {
    const m = location.hash.match(/(?:^#|&)token=([^&]+)/);
    if (!m) return;
    sessionStorage.setItem('troupe-dashboard-token', decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search + '#/graph');
  }

  function token() {
    return sessionStorage.getItem('troupe-dashboard-token') || '';
  }

  // admin runs an admin action, asking for the token when the server
  // wants one.
  async function admin(path) {
    for (let tries = 0; tries < 2; tries++) {
      let tok = token();
      if (!tok || tries > 0) {
        tok = prompt('Admin token (printed in the app\'s log with the dashboard URL, or $TROUPE_DASHBOARD_TOKEN):') || '';
        if (!tok) throw new Error('no admin token given');
        sessionStorage.setItem('troupe-dashboard-token', tok);
      }
      try {
        return await api(path, { method: 'POST', headers: { Authorization: 'Bearer ' + tok } });
      } catch (e) {
        if (e.status !== 401 && e.status !== 403) throw e;
        sessionStorage.removeItem('troupe-dashboard-token');
        if (tries > 0) throw e;
      }
    }
  }

  // ---- routing ----

  function route() {
    const parts = location.hash.replace(/^#\/?/, '').split('/');
    let view = parts[0] || 'graph';
    const arg = decodeURIComponent(parts.slice(1).join('/'));
    if (!document.getElementById('view-' + view)) view = 'graph';
    state.view = view;
    state.arg = arg;
    for (const sec of document.querySelectorAll('.view')) sec.hidden = sec.id !== 'view-' + view;
    for (const a of document.querySelectorAll('#tabs a')) {
      const tab = a.dataset.tab;
      a.classList.toggle('active', tab === view || (view === 'panel' && tab === 'panel:' + arg));
    }
    if (view === 'events') openEvents();
    if (view === 'timeline') { loadTransactions(); if (arg) showTimeline(arg); }
    if (view === 'deadletters') loadDeadLetters();
    if (view === 'subscriptions') renderSubscriptions();
    if (view === 'panel') showPanel(arg);
  }

  // ---- topology ----

  const COL = 240, NODE_W = 160, TOPIC_H = 30, SUB_H = 40, DLQ_H = 30, GAP = 14, LANE_PAD = 14, LEFT = 16, TOP = 8;

  // layout places every node: one horizontal lane per service (and one for
  // publishers outside the app), and columns by causal depth: a topic
  // comes after the subscriptions that publish it, a subscription after
  // its topic.
  function layout(g) {
    const subs = new Map(g.subscriptions.map((x) => [x.id, x]));
    const into = new Map();
    for (const e of g.edges) {
      if (e.kind === 'emits' || e.kind === 'compensates') {
        if (!into.has(e.to)) into.set(e.to, []);
        into.get(e.to).push(e.from);
      }
    }
    const depth = new Map();
    for (const t of g.topics) depth.set(t.id, 0);
    const limit = 2 * (g.topics.length + g.subscriptions.length) + 2;
    for (let round = 0; round < limit; round++) {
      let changed = false;
      for (const x of g.subscriptions) {
        const d = Math.min((depth.get('topic:' + x.topic) || 0) + 1, limit);
        if (depth.get(x.id) !== d) { depth.set(x.id, d); changed = true; }
      }
      for (const t of g.topics) {
        let d = 0;
        for (const from of into.get(t.id) || []) d = Math.max(d, (depth.get(from) || 0) + 1);
        d = Math.min(d, limit);
        if (depth.get(t.id) !== d) { depth.set(t.id, d); changed = true; }
      }
      if (!changed) break;
    }
    // Compress the columns that hold nothing.
    const used = [...new Set(depth.values())].sort((a, b) => a - b);
    const colOf = new Map(used.map((d, i) => [d, i + 1]));

    const lanes = [];
    const laneOf = new Map();
    const needExternal = g.topics.some((t) => t.external || !t.publishers.length);
    if (needExternal) lanes.push({ id: 'external', label: 'outside the app', items: new Map() });
    for (const sv of g.services) lanes.push({ id: sv.id, label: sv.name, service: sv, items: new Map() });
    const laneIdx = new Map(lanes.map((l, i) => [l.id, i]));
    const place = (id, lane, kind) => {
      const l = lanes[laneIdx.get(lane)];
      const col = colOf.get(depth.get(id)) || 1;
      if (!l.items.has(col)) l.items.set(col, []);
      l.items.get(col).push({ id, kind });
      laneOf.set(id, lane);
    };
    for (const t of g.topics) {
      let lane = 'external';
      const from = (into.get(t.id) || [])[0];
      if (from) lane = 'service:' + subs.get(from).service;
      else if (t.publishers.some((p) => p !== 'external')) lane = 'service:' + t.publishers.find((p) => p !== 'external');
      if (!laneIdx.has(lane)) lane = needExternal ? 'external' : lanes[0].id;
      place(t.id, lane, 'topic');
    }
    for (const x of g.subscriptions) place(x.id, 'service:' + x.service, 'subscription');

    const pos = new Map();
    let y = TOP;
    let maxCol = 1;
    lanes.forEach((l, i) => {
      let hgt = 44;
      for (const [col, items] of l.items) {
        maxCol = Math.max(maxCol, col);
        let hh = 0;
        for (const it of items) hh += (it.kind === 'topic' ? TOPIC_H : SUB_H + 10 + DLQ_H) + GAP;
        hgt = Math.max(hgt, hh - GAP);
      }
      l.y = y;
      l.h = hgt + 2 * LANE_PAD;
      l.alt = i % 2 === 1;
      pos.set(l.id, { x: LEFT, y: y + l.h / 2 - 20, w: NODE_W - 26, h: 40 });
      for (const [col, items] of l.items) {
        let total = 0;
        for (const it of items) total += (it.kind === 'topic' ? TOPIC_H : SUB_H + 10 + DLQ_H) + GAP;
        let yy = y + LANE_PAD + (hgt - (total - GAP)) / 2;
        const x = LEFT + col * COL - 30;
        for (const it of items) {
          if (it.kind === 'topic') {
            pos.set(it.id, { x, y: yy, w: NODE_W, h: TOPIC_H });
            yy += TOPIC_H + GAP;
          } else {
            pos.set(it.id, { x, y: yy, w: NODE_W, h: SUB_H });
            const dl = subs.get(it.id).deadLetters;
            pos.set(dl, { x: x + 28, y: yy + SUB_H + 10, w: NODE_W - 56, h: DLQ_H });
            yy += SUB_H + 10 + DLQ_H + GAP;
          }
        }
      }
      y += l.h;
    });
    return { lanes, pos, width: LEFT + (maxCol + 1) * COL - 30, height: y + TOP };
  }

  function edgePath(a, b, kind) {
    if (kind === 'dead-letters') {
      const x = b.x + b.w / 2;
      return { d: `M${x},${a.y + a.h} L${x},${b.y}`, mid: { x: x + 4, y: (a.y + a.h + b.y) / 2 }, vertical: true };
    }
    const x1 = a.x + a.w, y1 = a.y + a.h / 2, x2 = b.x, y2 = b.y + b.h / 2;
    let c1, c2;
    if (x2 > x1 + 10) {
      const dx = Math.max(40, (x2 - x1) / 2);
      c1 = [x1 + dx, y1]; c2 = [x2 - dx, y2];
    } else {
      // backwards: loop out to the right and come in from the left
      const drop = Math.max(60, Math.abs(y2 - y1) / 2 + 50);
      c1 = [x1 + 90, y1 + drop]; c2 = [x2 - 90, y2 + drop];
    }
    const mid = {
      x: (x1 + 3 * c1[0] + 3 * c2[0] + x2) / 8,
      y: (y1 + 3 * c1[1] + 3 * c2[1] + y2) / 8,
    };
    return { d: `M${x1},${y1} C${c1[0]},${c1[1]} ${c2[0]},${c2[1]} ${x2},${y2}`, mid };
  }

  function renderGraph() {
    const g = state.graph;
    if (!g) return;
    const lay = layout(g);
    state.layout = lay;
    const svg = s('svg', { width: lay.width, height: lay.height, viewBox: `0 0 ${lay.width} ${lay.height}`, id: 'graph-svg', role: 'img', 'aria-label': 'topology of ' + g.app });
    const defs = s('defs');
    for (const k of ['flow', 'publishes', 'compensates', 'dead-letters', 'observed']) {
      defs.append(s('marker', { id: 'arrow-' + k, viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 5, markerHeight: 5, orient: 'auto-start-reverse' },
        s('path', { d: 'M0,0 L10,5 L0,10 z', class: 'arrow ' + k })));
    }
    svg.append(defs);
    for (const l of lay.lanes) {
      svg.append(s('rect', { x: 0, y: l.y, width: lay.width, height: l.h, class: 'lane' + (l.alt ? ' alt' : '') }));
    }
    const edges = s('g', { id: 'edges' });
    const labels = s('g', { id: 'edge-labels' });
    const nodes = s('g', { id: 'nodes' });
    svg.append(edges, nodes, labels);

    const redundant = new Set();
    for (const e of g.edges) {
      if (e.kind === 'emits' || e.kind === 'compensates') {
        const sub = g.subscriptions.find((x) => x.id === e.from);
        if (sub) redundant.add('service:' + sub.service + '>' + e.to);
      }
    }
    for (const e of g.edges) {
      if (e.kind === 'handled-by') continue;
      if (e.kind === 'publishes' && redundant.has(e.from + '>' + e.to)) continue;
      drawEdge(edges, labels, e.from, e.to, e.kind, e.attempts);
    }

    for (const l of lay.lanes) {
      const p = lay.pos.get(l.id);
      if (l.id === 'external') {
        nodes.append(s('g', { class: 'node external', 'data-id': 'external', 'data-kind': 'external' },
          s('rect', { x: p.x, y: p.y, width: p.w, height: p.h, rx: 4 }),
          s('text', { x: p.x + 10, y: p.y + 24, text: 'outside the app' })));
        continue;
      }
      const sv = l.service;
      const routes = sv.routes.length ? sv.routes.length + (sv.routes.length === 1 ? ' route' : ' routes') : 'service';
      nodes.append(s('g', { class: 'node service', 'data-id': sv.id, 'data-kind': 'service', 'data-name': sv.name },
        s('title', { text: sv.name + (sv.routes.length ? '\n' + sv.routes.join('\n') : '') }),
        s('rect', { x: p.x, y: p.y, width: p.w, height: p.h, rx: 6 }),
        s('text', { x: p.x + 10, y: p.y + 17, class: 'name', 'data-fit': p.w - 16, text: sv.name }),
        s('text', { x: p.x + 10, y: p.y + 32, class: 'sub-line', text: routes })));
    }
    for (const t of g.topics) {
      const p = lay.pos.get(t.id);
      nodes.append(s('g', { class: 'node topic', 'data-id': t.id, 'data-kind': 'topic', 'data-name': t.name,
        onclick: () => { location.hash = '#/events/' + encodeURIComponent(t.name); } },
      s('title', { text: t.type + '\n' + t.goType + '\npublished by ' + (t.publishers.join(', ') || 'nobody') + '\nclick: live events' }),
      s('rect', { x: p.x, y: p.y, width: p.w, height: p.h, rx: p.h / 2 }),
      s('text', { x: p.x + p.w / 2, y: p.y + 19, 'text-anchor': 'middle', 'data-fit': p.w - 16, text: t.type })));
    }
    for (const x of g.subscriptions) {
      const p = lay.pos.get(x.id);
      const ref = x.service + '.' + x.name;
      nodes.append(s('g', { class: 'node subscription', 'data-id': x.id, 'data-kind': 'subscription', 'data-name': ref,
        onclick: () => { location.hash = '#/subscriptions'; } },
      s('title', { text: ref + ' handles ' + x.topic + '\nmax attempts ' + x.retry.maxAttempts + ', backoff ' + x.retry.minBackoff + '…' + x.retry.maxBackoff + ', deadline ' + x.retry.deadline }),
      s('rect', { x: p.x, y: p.y, width: p.w, height: p.h, rx: 2 }),
      s('line', { x1: p.x + 7, y1: p.y, x2: p.x + 7, y2: p.y + p.h }),
      s('line', { x1: p.x + p.w - 7, y1: p.y, x2: p.x + p.w - 7, y2: p.y + p.h }),
      s('text', { x: p.x + 14, y: p.y + 16, 'data-fit': p.w - 24, text: x.name }),
      s('text', { x: p.x + 14, y: p.y + 31, class: 'sub-line', 'data-stat': x.id, text: '' })));
      const dp = lay.pos.get(x.deadLetters);
      const rx = dp.w / 2, ry = 4;
      nodes.append(s('g', { class: 'node deadletters', 'data-id': x.deadLetters, 'data-kind': 'dead-letters', 'data-name': ref,
        onclick: () => { location.hash = '#/deadletters/' + encodeURIComponent(ref); } },
      s('title', { text: 'dead letters of ' + ref + ', after ' + x.retry.maxAttempts + ' attempts or a permanent error (click to replay or discard)' }),
      s('path', { d: `M${dp.x},${dp.y + ry} a${rx},${ry} 0 0,0 ${dp.w},0 a${rx},${ry} 0 0,0 ${-dp.w},0 v${dp.h - 2 * ry} a${rx},${ry} 0 0,0 ${dp.w},0 v${-(dp.h - 2 * ry)}` }),
      s('text', { x: dp.x + dp.w / 2, y: dp.y + dp.h - 8, 'text-anchor': 'middle', 'data-stat': x.deadLetters, text: 'dead letters' })));
    }
    const box = $('#graph');
    box.replaceChildren(svg);
    // Below four fifths of its size the text gets too small to read: scroll
    // instead.
    svg.style.minWidth = Math.round(lay.width * 0.8) + 'px';
    for (const t of svg.querySelectorAll('text[data-fit]')) fitText(t, Number(t.dataset.fit));
    applyStats();
  }

  // fitText shortens an SVG text with an ellipsis until it fits max pixels.
  function fitText(el, max) {
    const full = el.textContent;
    let n = full.length;
    while (n > 4 && el.getComputedTextLength() > max) {
      n--;
      el.textContent = full.slice(0, n) + '…';
    }
  }

  function drawEdge(edges, labels, from, to, kind, attempts) {
    const lay = state.layout;
    const a = lay.pos.get(from), b = lay.pos.get(to);
    if (!a || !b) return null;
    const p = edgePath(a, b, kind);
    const marker = ['publishes', 'compensates', 'dead-letters', 'observed'].includes(kind) ? kind : 'flow';
    const key = from + '>' + to + '>' + kind;
    edges.append(s('path', { d: p.d, class: 'edge ' + kind, 'data-edge': key, 'marker-end': `url(#arrow-${marker})` }));
    const lbl = s('g', { class: 'edge-label ' + kind, 'data-label': key, 'data-attempts': attempts || '' });
    const bg = s('rect', { rx: 3 });
    const tx = s('text', { x: p.mid.x, y: p.mid.y + 3.5, 'text-anchor': p.vertical ? 'start' : 'middle' });
    lbl.append(bg, tx);
    labels.append(lbl);
    setLabel(lbl, kind === 'compensates' ? 'compensates' : '');
    return lbl;
  }

  function setLabel(lbl, text) {
    const [bg, tx] = lbl.children;
    tx.textContent = text;
    if (!text) { bg.setAttribute('width', 0); return; }
    const bb = tx.getBBox();
    bg.setAttribute('x', bb.x - 3); bg.setAttribute('y', bb.y - 1);
    bg.setAttribute('width', bb.width + 6); bg.setAttribute('height', bb.height + 2);
  }

  function applyStats() {
    const st = state.stats, lay = state.layout;
    if (!st || !lay) return;
    const svg = $('#graph-svg');
    if (!svg) return;
    for (const e of st.edges) {
      const key = e.from + '>' + e.to + '>' + e.kind;
      let lbl = svg.querySelector(`[data-label="${CSS.escape(key)}"]`);
      if (!lbl && e.kind === 'observed' && e.count > 0) {
        lbl = drawEdge(svg.querySelector('#edges'), svg.querySelector('#edge-labels'), e.from, e.to, 'observed');
      }
      if (!lbl) continue;
      const path = svg.querySelector(`[data-edge="${CSS.escape(key)}"]`);
      if (path) path.classList.toggle('active', e.rate > 0);
      let text = '';
      switch (e.kind) {
        case 'dead-letters':
          // The store's node says how many wait there; the edge stays
          // short and unlabelled.
          break;
        case 'compensates':
          text = 'compensates' + (e.count ? ` · ${e.count}` : '');
          break;
        default:
          if (e.count) text = `${fmtRate(e.rate)} · ${e.count}` + (e.errors ? ` · ${e.errors} failed` : '');
      }
      lbl.classList.toggle('errors', e.errors > 0);
      setLabel(lbl, text);
    }
    for (const x of st.subscriptions) {
      const line = svg.querySelector(`[data-stat="${CSS.escape(x.id)}"]`);
      if (line) {
        const bits = [];
        if (x.lag !== null && x.lag !== undefined) bits.push('lag ' + x.lag);
        bits.push(fmtRate(x.rate));
        if (x.failed) bits.push(x.failed + ' failed');
        if (x.breaker !== 'closed') bits.push('breaker ' + x.breaker);
        line.textContent = bits.join(' · ');
      }
      const node = svg.querySelector(`[data-id="${CSS.escape(x.id)}"]`);
      if (node) {
        node.classList.toggle('failing', x.errorRate > 0);
        node.classList.toggle('paused', x.breaker !== 'closed');
      }
      const g = state.graph.subscriptions.find((y) => y.id === x.id);
      if (!g) continue;
      const dl = svg.querySelector(`[data-stat="${CSS.escape(g.deadLetters)}"]`);
      if (dl) {
        const n = x.deadLetters;
        dl.textContent = n === null || n === undefined ? 'dead letters' : n + (x.deadLettersMore ? '+' : '') + ' dead letter' + (n === 1 ? '' : 's');
        dl.parentNode.classList.toggle('full', n > 0);
      }
    }
  }

  async function pollStats() {
    try {
      state.stats = await api('stats');
      setStatus('live · ' + new Date().toLocaleTimeString([], { hour12: false }));
      applyStats();
      const total = state.stats.subscriptions.reduce((n, x) => n + (x.deadLetters || 0), 0);
      const badge = $('#dl-badge');
      badge.hidden = total === 0;
      badge.textContent = total;
      if (state.view === 'subscriptions') renderSubscriptions();
    } catch (e) {
      setStatus('cannot reach the app: ' + e.message, true);
    }
  }

  // ---- subscriptions ----

  function renderSubscriptions() {
    const st = state.stats;
    const body = $('#subs-table tbody');
    if (!st) return;
    body.replaceChildren(...st.subscriptions.map((x) => h('tr', { 'data-subscription': x.subscription },
      h('td', { class: 'mono', text: x.subscription }),
      h('td', { class: 'mono', text: x.topic }),
      h('td', { class: 'num', text: x.rate.toFixed(2) }),
      h('td', { class: 'num', text: x.handled }),
      h('td', { class: 'num', text: x.failed }),
      h('td', { class: 'num', text: x.retried }),
      h('td', { class: 'num', text: x.deadLettered }),
      h('td', { class: 'num', text: x.compensated }),
      h('td', { class: 'num', text: x.meanMs ? x.meanMs.toFixed(1) : '' }),
      h('td', { class: 'num lag', title: x.lagError || null, text: x.lag === null ? '–' : x.lag }),
      h('td', { class: 'num' }, x.deadLetters ? h('a', { href: '#/deadletters/' + encodeURIComponent(x.subscription), text: x.deadLetters + (x.deadLettersMore ? '+' : '') }) : (x.deadLetters === 0 ? '0' : '–')),
      h('td', { text: x.breaker }))));
  }

  // ---- live events ----

  function eventsURL() {
    const q = new URLSearchParams();
    const topic = $('#event-topic').value;
    const corr = $('#event-correlation').value.trim();
    if (topic) q.set('topic', topic);
    if (corr) q.set('correlation', corr);
    const qs = q.toString();
    return 'api/events' + (qs ? '?' + qs : '');
  }

  function openEvents(force) {
    if (state.view === 'events' && state.arg && $('#event-topic').value !== state.arg) {
      $('#event-topic').value = state.arg;
      force = true;
    }
    if (state.events && !force) return;
    if (state.events) state.events.close();
    const es = new EventSource(eventsURL());
    state.events = es;
    const stateEl = $('#event-state');
    stateEl.textContent = 'connecting…';
    stateEl.dataset.ready = '';
    es.addEventListener('ready', () => { stateEl.textContent = 'live'; stateEl.dataset.ready = '1'; });
    es.addEventListener('dropped', (m) => { stateEl.textContent = 'live · dropped ' + JSON.parse(m.data).count + ' (too fast to show)'; });
    es.addEventListener('end', () => { stateEl.textContent = 'reconnecting…'; });
    es.onerror = () => {
      stateEl.dataset.ready = '';
      if (es.readyState === EventSource.CLOSED) {
        stateEl.textContent = 'closed; check the filter';
        fetch(eventsURL()).then((r) => r.json()).then((b) => { if (b && b.error) stateEl.textContent = b.error; }).catch(() => {});
      } else {
        stateEl.textContent = 'reconnecting…';
      }
    };
    es.onmessage = (m) => {
      if (state.paused) return;
      addEvent(JSON.parse(m.data));
    };
  }

  function addEvent(ev) {
    const body = $('#event-table tbody');
    $('#event-empty').hidden = true;
    const data = ev.data !== undefined ? JSON.stringify(ev.data, null, 2) : (ev.dataText || '');
    const detail = h('tr', { class: 'event-detail', hidden: true },
      h('td', { colspan: 5 }, h('pre', { text: data }),
        h('div', { class: 'hint', text: `source ${ev.source}` + (ev.causation ? ` · caused by ${ev.causation}` : '') + (ev.orderingKey ? ` · key ${ev.orderingKey}` : '') })));
    const row = h('tr', { class: 'event-row', 'data-type': ev.type, 'data-correlation': ev.correlation, onclick: () => { detail.hidden = !detail.hidden; } },
      h('td', { class: 'mono', text: fmtTime(ev.time) }),
      h('td', { class: 'mono', text: ev.type }),
      h('td', { text: ev.service || '' }),
      h('td', { class: 'mono' }, h('a', { class: 'corr', href: '#/timeline/' + encodeURIComponent(ev.correlation), text: short(ev.correlation, 40), onclick: (e) => e.stopPropagation() })),
      h('td', { class: 'mono', text: short(ev.id, 40) }));
    body.prepend(row, detail);
    while (body.children.length > 600) body.lastElementChild.remove();
  }

  // ---- transactions and timelines ----

  async function loadTransactions() {
    const status = $('#tx-status').value;
    let ans;
    try {
      ans = await api('transactions' + (status ? '?status=' + encodeURIComponent(status) : ''));
    } catch (e) {
      $('#tx-list').replaceChildren(h('li', { class: 'empty', text: e.message }));
      return;
    }
    const items = ans.transactions.map((t) => h('li', {},
      h('a', { href: '#/timeline/' + encodeURIComponent(t.correlation), 'data-correlation': t.correlation, 'data-status': t.status,
        class: t.correlation === state.timeline ? 'active' : '' },
      h('span', { class: 'chip ' + t.status, text: t.status }), ' ',
      h('span', { class: 'mono', text: short(t.correlation, 30) }),
      h('span', { class: 'meta', text: `${fmtTime(t.first)} · ${t.firstType || ''} · ${t.published} published, ${t.handled + t.compensated} handled` }))));
    $('#tx-list').replaceChildren(...(items.length ? items : [h('li', { class: 'empty', text: 'None seen by this process yet.' })]));
  }

  // timeScale maps a time offset to a position on the waterfall, in
  // percent. Long stretches where nothing ran (a retry's backoff, a dead
  // letter waiting for its replay) are cut down to a narrow band each, so
  // the steps around them stay readable.
  function timeScale(steps, total) {
    const spans = steps.map((st) => [st.offsetMs, st.offsetMs + st.durationMs]).sort((a, b) => a[0] - b[0]);
    const gaps = [];
    let end = 0;
    for (const [a, b] of spans) {
      if (a - end > Math.max(0.2 * total, 100)) gaps.push([end, a]);
      end = Math.max(end, b);
    }
    // The stretches between the gaps share what the gaps leave, in
    // proportion to their length but each at least a sixth of it.
    const GAP = 6;
    const bounds = [0, ...gaps.flat(), total];
    const segs = [];
    for (let i = 0; i < bounds.length; i += 2) segs.push([bounds[i], Math.max(bounds[i], bounds[i + 1])]);
    const busy = Math.max(segs.reduce((n, [a, b]) => n + (b - a), 0), 0.001);
    const weights = segs.map(([a, b]) => Math.max((b - a) / busy, 1 / 6));
    const sum = weights.reduce((n, w) => n + w, 0);
    const widths = weights.map((w) => ((100 - GAP * gaps.length) * w) / sum);
    const x = (t) => {
      let pos = 0;
      for (let i = 0; i < segs.length; i++) {
        const [a, b] = segs[i];
        if (t <= b || i === segs.length - 1) return pos + (b > a ? Math.min((t - a) / (b - a), 1) : 0) * widths[i];
        pos += widths[i];
        const next = segs[i + 1][0];
        if (t < next) return pos + ((t - b) / (next - b)) * GAP;
        pos += GAP;
      }
      return pos;
    };
    return { x, gaps: gaps.map(([a, b]) => ({ from: x(a), to: x(b), ms: b - a })) };
  }

  async function showTimeline(corr) {
    state.timeline = corr;
    $('#tx-correlation').value = corr;
    const box = $('#timeline');
    box.replaceChildren(h('p', { class: 'empty', text: 'Reading the journal…' }));
    let tl;
    try {
      tl = await api('timeline/' + encodeURIComponent(corr));
    } catch (e) {
      box.replaceChildren(h('p', { class: 'empty', text: e.message }));
      return;
    }
    if (state.timeline !== corr) return;
    const total = Math.max(tl.durationMs, 0.001);
    const counts = {};
    for (const st of tl.steps) counts[st.outcome] = (counts[st.outcome] || 0) + 1;
    const scale = timeScale(tl.steps, total);
    const tickAt = (pct, text) => {
      const sp = h('span', { text });
      sp.style.left = pct + '%';
      return sp;
    };
    const ticks = h('div', { class: 'ticks' });
    if (!scale.gaps.length) {
      for (const f of [0, 0.25, 0.5, 0.75, 1]) ticks.append(tickAt(f * 100, fmtMs(total * f)));
    } else {
      ticks.append(tickAt(0, fmtMs(0)));
      for (const g of scale.gaps) {
        const band = h('span', { class: 'gap-label', text: '⋯ ' + fmtMs(g.ms) + ' later' });
        band.style.left = ((g.from + g.to) / 2) + '%';
        ticks.append(band);
      }
      if (100 - scale.gaps[scale.gaps.length - 1].to > 12) ticks.append(tickAt(100, fmtMs(total)));
    }
    const gapBands = () => scale.gaps.map((g) => {
      const band = h('div', { class: 'gap' });
      band.style.left = g.from + '%';
      band.style.width = (g.to - g.from) + '%';
      return band;
    });
    const rows = tl.steps.map((st) => {
      const label = h('div', { class: 'label' });
      label.style.paddingLeft = (st.depth * 14) + 'px';
      if (st.kind === 'publish') {
        label.append(h('span', { class: 'what', text: '→ ' + st.type }), ' ', h('span', { class: 'who', text: 'published by ' + (st.service || 'outside') }));
      } else {
        label.append(h('span', { class: 'what', text: st.subscription }), ' ',
          h('span', { class: 'who', text: `attempt ${st.attempt}` + (st.replays ? ` · replay ${st.replays}` : '') }));
      }
      label.append(' ', h('span', { class: 'chip ' + st.outcome, text: st.outcome }));
      label.title = `${st.kind} ${st.type} · event ${st.event} · ${fmtTime(st.time)} · took ${fmtMs(st.durationMs)}`;
      const bar = h('div', { class: 'bar ' + st.outcome, title: `${st.outcome} · starts at +${fmtMs(st.offsetMs)} · took ${fmtMs(st.durationMs)}` });
      const left = Math.min(99.5, scale.x(st.offsetMs));
      const width = Math.max(0.4, scale.x(st.offsetMs + st.durationMs) - left);
      bar.style.left = left + '%';
      bar.style.width = width + '%';
      const dur = h('span', { class: 'dur', text: fmtMs(st.durationMs) });
      if (left + width > 80) { dur.style.right = (100 - left) + '%'; dur.classList.add('before'); } else dur.style.left = (left + width) + '%';
      const row = h('div', { class: 'tl-row', 'data-outcome': st.outcome, 'data-kind': st.kind }, label, h('div', { class: 'track' }, gapBands(), bar, dur));
      if (st.error) {
        const err = h('div', { class: 'err', text: st.error });
        if (st.outcome === 'dead-lettered') err.append(h('a', { href: '#/deadletters/' + encodeURIComponent(st.subscription), text: 'dead letters →' }));
        row.append(err);
      }
      return row;
    });
    box.replaceChildren(
      h('div', { class: 'tl-head' },
        h('h2', {}, 'Transaction ', h('span', { class: 'mono', text: tl.correlation })),
        h('div', { class: 'summary' }, `started ${new Date(tl.start).toLocaleString()}`, ` · ${fmtMs(tl.durationMs)} · ${tl.steps.length} steps`,
          Object.entries(counts).map(([k, n]) => h('span', { class: 'chip ' + k, text: `${n} ${k}` })),
          h('button', { type: 'button', onclick: () => showTimeline(corr), text: 'Reload' }))),
      h('div', { class: 'tl-axis' }, h('div', {}), ticks),
      ...rows);
    for (const a of document.querySelectorAll('#tx-list a')) a.classList.toggle('active', a.dataset.correlation === corr);
  }

  // ---- dead letters ----

  async function loadDeadLetters() {
    const box = $('#deadletters');
    const only = state.view === 'deadletters' ? state.arg : '';
    $('#dl-filter').textContent = only ? 'subscription ' + only : 'all subscriptions';
    let ans;
    try {
      ans = await api('deadletters' + (only ? '?subscription=' + encodeURIComponent(only) : ''));
    } catch (e) {
      box.replaceChildren(h('p', { class: 'empty', text: e.message }));
      return;
    }
    const parts = [];
    for (const sub of ans.subscriptions) {
      if (!only && !sub.deadLetters.length && !sub.error) continue;
      const rows = sub.deadLetters.map((dl) => {
        const tr = h('tr', { 'data-id': dl.id, 'data-subscription': sub.subscription },
          h('td', { class: 'mono', text: fmtTime(dl.deadAt) }),
          h('td', { class: 'mono', text: dl.type }),
          h('td', { class: 'mono' }, h('a', { class: 'corr', href: '#/timeline/' + encodeURIComponent(dl.correlation), text: short(dl.correlation, 32) })),
          h('td', { text: dl.reason }),
          h('td', { class: 'num', text: dl.attempts + (dl.replays ? ` (${dl.replays} replays)` : '') }),
          h('td', {}, h('div', { class: 'error', text: dl.error }),
            h('details', {}, h('summary', { text: 'event' }), h('pre', { text: dl.data !== undefined ? JSON.stringify(dl.data, null, 2) : (dl.dataText || '') }))),
          h('td', { class: 'dl-actions' },
            h('button', { type: 'button', class: 'primary', 'data-action': 'replay', text: 'Replay', onclick: (e) => act(e.target, 'replay', sub.subscription, dl.id) }),
            h('button', { type: 'button', class: 'danger', 'data-action': 'discard', text: 'Discard', onclick: (e) => act(e.target, 'discard', sub.subscription, dl.id) })));
        return tr;
      });
      parts.push(h('div', { class: 'dl-sub', 'data-subscription': sub.subscription },
        h('h3', {}, sub.subscription, ' ', h('span', { class: 'topic', text: sub.topic })),
        sub.error ? h('p', { class: 'error', text: sub.error }) : null,
        rows.length
          ? h('table', { class: 'grid' },
            h('thead', {}, h('tr', {}, ['dead at', 'type', 'correlation', 'reason', 'attempts', 'error', ''].map((t) => h('th', { text: t })))),
            h('tbody', {}, rows))
          : h('p', { class: 'empty', text: 'No dead letters.' }),
        sub.more ? h('p', { class: 'hint', text: 'More are stored than shown here.' }) : null));
    }
    box.replaceChildren(...(parts.length ? parts : [h('p', { class: 'empty', text: 'No dead letters. Every event was handled or is still being retried.' })]));
  }

  async function act(btn, action, sub, id) {
    if (action === 'discard' && !confirm(`Discard dead letter ${id} of ${sub} for good?`)) return;
    btn.disabled = true;
    try {
      await admin(`deadletters/${encodeURIComponent(sub)}/${encodeURIComponent(id)}/${action}`);
      toast(`${action === 'replay' ? 'Replayed' : 'Discarded'} ${id} of ${sub}`);
    } catch (e) {
      toast(`${action} failed: ${e.message}`, true);
    }
    btn.disabled = false;
    loadDeadLetters();
    pollStats();
  }

  // ---- panels ----

  function showPanel(path) {
    const p = (state.info && state.info.panels || []).find((x) => x.path === path);
    const frame = $('#panel-frame');
    if (!p) { frame.removeAttribute('src'); return; }
    if (frame.getAttribute('src') !== p.url) frame.setAttribute('src', p.url);
  }

  // ---- start ----

  async function start() {
    takeTokenFromURL();
    $('#event-filter').addEventListener('submit', (e) => {
      e.preventDefault();
      if (state.arg) { location.hash = '#/events'; }
      openEvents(true);
    });
    $('#event-pause').addEventListener('click', (e) => {
      state.paused = !state.paused;
      e.target.textContent = state.paused ? 'Resume' : 'Pause';
    });
    $('#event-clear').addEventListener('click', () => { $('#event-table tbody').replaceChildren(); $('#event-empty').hidden = false; });
    $('#tx-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const c = $('#tx-correlation').value.trim();
      if (c) location.hash = '#/timeline/' + encodeURIComponent(c);
    });
    $('#tx-status').addEventListener('change', loadTransactions);
    $('#dl-refresh').addEventListener('click', loadDeadLetters);
    window.addEventListener('hashchange', route);

    try {
      [state.info, state.graph] = await Promise.all([api('info'), api('topology')]);
    } catch (e) {
      setStatus(e.message, true);
      $('#graph').replaceChildren(h('p', { class: 'empty', text: e.message }));
      return;
    }
    $('#app-name').textContent = state.info.app;
    document.title = state.info.app + ' · troupe dashboard';
    for (const t of state.graph.topics) $('#event-topic').append(h('option', { value: t.name, text: t.type }));
    const nav = $('#tabs');
    for (const p of state.info.panels) nav.append(h('a', { href: '#/panel/' + encodeURIComponent(p.path), 'data-tab': 'panel:' + p.path, text: p.title }));
    renderGraph();
    route();
    await pollStats();
    setInterval(pollStats, 2000);
    setInterval(() => { if (state.view === 'timeline') loadTransactions(); }, 3000);
    document.body.dataset.ready = '1';
  }

  start();
})();
