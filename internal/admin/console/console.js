// podpin web console: reads the admin JSON API of the listener that served
// it and redraws every two seconds. No other origin is contacted.
'use strict';

const REFRESH_MS = 2000;

// token is the bearer token the operator typed, in memory only.
let token = '';
// sections holds the DOM of each route, by route name, so a refresh
// updates values in place and leaves the search boxes alone.
const sections = new Map();

class AuthError extends Error {}

async function api(path) {
  const headers = { 'Accept': 'application/json' };
  if (token) headers['Authorization'] = 'Bearer ' + token;
  const resp = await fetch(path, { headers, cache: 'no-store', credentials: 'omit' });
  if (resp.status === 401) throw new AuthError('token required');
  let body = null;
  try { body = await resp.json(); } catch (e) { body = null; }
  if (!resp.ok) {
    const err = new Error((body && body.error) || resp.status + ' ' + resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function el(tag, attrs, ...children) {
  const n = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') n.className = v;
    else if (k === 'text') n.textContent = v;
    else if (k === 'width') n.style.width = v; // CSSOM: allowed by the CSP, unlike style=
    else n.setAttribute(k, v);
  }
  for (const c of children) n.append(c);
  return n;
}

function fmtInt(n) { return Number(n || 0).toLocaleString('en-US'); }

function fmtAgo(iso) {
  const t = Date.parse(iso);
  if (!t) return '-';
  let s = Math.max(0, Math.round((Date.now() - t) / 1000));
  if (s < 60) return s + 's ago';
  const m = Math.floor(s / 60); s %= 60;
  if (m < 60) return m + 'm' + (s ? ' ' + s + 's' : '') + ' ago';
  const h = Math.floor(m / 60);
  return h + 'h ' + (m % 60) + 'm ago';
}

function setStatus(text, isError) {
  const s = document.getElementById('status');
  s.textContent = text;
  s.classList.toggle('error', !!isError);
}

// section returns the DOM of a route, building it on first sight.
function section(name) {
  let s = sections.get(name);
  if (s) return s;
  s = {};
  s.root = el('section', { class: 'route', 'data-route': name });
  s.meta = el('div', { class: 'meta' });
  s.root.append(el('div', { class: 'route-head' }, el('h2', { text: 'route ' + name }), s.meta));

  s.podsBody = el('tbody');
  const podsTable = el('table', { class: 'pods' },
    el('thead', {}, el('tr', {},
      el('th', { text: 'Pod' }), el('th', { text: 'State' }), el('th', { text: 'Address' }),
      el('th', { class: 'num', text: 'In flight' }), el('th', { class: 'num', text: 'Sessions' }),
      el('th', { class: 'num', text: 'Requests' }), el('th', { class: 'num', text: 'Rebinds' }))),
    s.podsBody);

  s.chart = el('div', { class: 'chart', role: 'img', 'aria-label': 'sessions per pod' });
  s.rebinds = el('ul', { class: 'rebind-list' });

  s.input = el('input', { name: 'key', type: 'search', placeholder: 'session key', autocomplete: 'off', spellcheck: 'false', 'aria-label': 'session key' });
  s.result = el('div', { class: 'lookup-result', 'aria-live': 'polite' });
  const form = el('form', { class: 'lookup' }, s.input, el('button', { type: 'submit', text: 'Find' }));
  form.addEventListener('submit', (ev) => { ev.preventDefault(); lookup(name, s); });

  s.root.append(el('div', { class: 'grid' },
    el('div', {}, el('h3', { text: 'Pods' }), podsTable,
      el('h3', { class: 'spaced', text: 'Sessions per pod' }), s.chart),
    el('div', { class: 'side' },
      el('div', {}, el('h3', { text: 'Find a session' }), form, s.result),
      el('div', {}, el('h3', { text: 'Rebinds by reason' }), s.rebinds))));
  document.getElementById('routes').append(s.root);
  sections.set(name, s);
  return s;
}

function drawRoute(info, pods) {
  const s = section(info.name);
  const t = info.table || {};
  const meta = [
    ['key header', info.keyHeader], ['balancer', info.balancer], ['pods', fmtInt(info.pods)],
    ['sessions', fmtInt(t.entries) + ' / ' + fmtInt(t.maxEntries)],
    ['hit ratio', ((t.hitRatio || 0) * 100).toFixed(1) + '%'], ['idle timeout', t.idleTimeout],
  ];
  if (info.host) meta.unshift(['host', info.host]);
  if (info.pathPrefix) meta.unshift(['path', info.pathPrefix]);
  s.meta.replaceChildren(...meta.map(([k, v]) => el('span', {}, k + ' ', el('b', { text: String(v) }))));

  s.podsBody.replaceChildren(...pods.map((p) => {
    const rebinds = Object.values(p.rebinds || {}).reduce((a, b) => a + b, 0);
    return el('tr', { 'data-pod': p.name },
      el('td', { class: 'pod-name mono', text: p.name }),
      el('td', {}, el('span', { class: 'state state-' + p.state, text: p.state })),
      el('td', { class: 'mono', text: p.address }),
      el('td', { class: 'num in-flight', text: fmtInt(p.inFlight) }),
      el('td', { class: 'num sessions', text: fmtInt(p.sessions) }),
      el('td', { class: 'num requests', text: fmtInt(p.requests) }),
      el('td', { class: 'num rebinds', text: fmtInt(rebinds) }));
  }));

  const total = pods.reduce((a, p) => a + p.sessions, 0);
  const most = Math.max(1, ...pods.map((p) => p.sessions));
  s.chart.replaceChildren(...pods.map((p) => {
    const share = total ? Math.round(100 * p.sessions / total) : 0;
    return el('div', { class: 'bar-row', 'data-pod': p.name },
      el('span', { class: 'bar-label mono', text: p.name }),
      el('div', { class: 'bar-track' },
        el('div', { class: 'bar state-' + p.state, width: (100 * p.sessions / most).toFixed(1) + '%' })),
      el('span', { class: 'bar-value', text: fmtInt(p.sessions) + ' · ' + share + '%' }));
  }));

  const reasons = Object.entries(info.rebinds || {}).filter(([, n]) => n > 0).sort();
  s.rebinds.replaceChildren(...(reasons.length
    ? reasons.map(([r, n]) => el('li', { 'data-reason': r }, r + ' ', el('b', { text: fmtInt(n) })))
    : [el('li', { class: 'none', text: 'no rebinds yet' })]));
}

async function lookup(route, s) {
  const key = s.input.value;
  if (!key) { s.result.replaceChildren(); return; }
  s.result.replaceChildren(el('span', { class: 'pending', text: 'looking up…' }));
  try {
    const x = await api('/api/v1/routes/' + encodeURIComponent(route) + '/sessions/' + encodeURIComponent(key));
    s.result.replaceChildren(el('dl', { 'data-pod': x.pod },
      el('dt', { text: 'pod' }), el('dd', { class: 'found-pod mono', text: x.pod }),
      el('dt', { text: 'created' }), el('dd', { text: fmtAgo(x.created) + ' (' + x.created + ')' }),
      el('dt', { text: 'last used' }), el('dd', { text: fmtAgo(x.lastUsed) }),
      el('dt', { text: 'hits' }), el('dd', { text: fmtInt(x.hits) }),
      el('dt', { text: 'digest' }), el('dd', { class: 'mono', text: x.digest })));
  } catch (e) {
    if (e instanceof AuthError) { askToken(); s.result.replaceChildren(); return; }
    const cls = e.status === 404 ? 'missing' : 'error';
    s.result.replaceChildren(el('span', { class: cls, text: e.status === 404 ? 'not pinned: the next request with this key picks a pod' : e.message }));
  }
}

function askToken() {
  const f = document.getElementById('token-form');
  if (f.hidden) {
    f.hidden = false;
    document.getElementById('token').focus();
  }
  setStatus(token ? 'token refused' : 'token required', true);
}

// draw reads every route and its pods and redraws them.
async function draw() {
  try {
    const { routes } = await api('/api/v1/routes');
    const pods = await Promise.all(routes.map((r) => api('/api/v1/routes/' + encodeURIComponent(r.name) + '/pods')));
    const seen = new Set();
    routes.forEach((r, i) => { drawRoute(r, pods[i].pods); seen.add(r.name); });
    for (const [name, s] of sections) {
      if (!seen.has(name)) { s.root.remove(); sections.delete(name); }
    }
    document.getElementById('token-form').hidden = true;
    setStatus('updated ' + new Date().toLocaleTimeString('en-GB'), false);
    document.body.dataset.loaded = 'true';
  } catch (e) {
    if (e instanceof AuthError) askToken();
    else setStatus('cannot reach podpin: ' + e.message, true);
  }
}

async function refresh() {
  await draw();
  setTimeout(refresh, REFRESH_MS);
}

document.addEventListener('DOMContentLoaded', () => {
  document.getElementById('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = document.getElementById('token');
    token = input.value.trim();
    input.value = '';
    draw();
  });
  refresh();
});
