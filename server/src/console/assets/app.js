// The OpenData console: one dependency-free script over the public HTTP APIs.
// Views are hash routes: #/ (overview), #/timeseries, #/log, #/vector; a view's state
// lives in the hash's query string, so a URL is a shareable view.
'use strict';

// ---------------------------------------------------------------------------------
// Errors that reach the page are kept, so a test (or a curious user) can read them.
window.__consoleErrors = [];
window.addEventListener('error', (e) => window.__consoleErrors.push(String(e.message || e)));
window.addEventListener('unhandledrejection', (e) => window.__consoleErrors.push(String(e.reason)));

// ---------------------------------------------------------------------------------
// DOM helpers.
const SVG_NS = 'http://www.w3.org/2000/svg';

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

const $ = (sel, root) => (root || document).querySelector(sel);

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function fmtBytes(n) {
  if (!Number.isFinite(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n.toFixed(0) : n.toFixed(1)) + ' ' + units[i];
}

function fmtNum(v) {
  if (typeof v === 'string') v = Number(v);
  if (!Number.isFinite(v)) return String(v);
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e15 || a < 1e-4) return v.toExponential(3);
  if (Number.isInteger(v)) return v.toLocaleString('en-US');
  return Number(v.toPrecision(6)).toString();
}

function fmtRate(v) {
  if (v === null || v === undefined) return 'measuring…';
  return (v >= 100 ? v.toFixed(0) : v.toFixed(2)) + '/s';
}

function fmtTime(ms) {
  // 64-bit integers arrive as strings in protobuf-JSON.
  const d = new Date(Number(ms));
  const p = (n, w) => String(n).padStart(w || 2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function fmtDuration(secs) {
  secs = Math.floor(secs);
  const d = Math.floor(secs / 86400), hh = Math.floor(secs % 86400 / 3600), m = Math.floor(secs % 3600 / 60);
  if (d) return `${d}d ${hh}h`;
  if (hh) return `${hh}h ${m}m`;
  if (m) return `${m}m ${secs % 60}s`;
  return `${secs}s`;
}

// Local time for <input type="datetime-local">, and back.
function toLocalInput(ms) {
  const d = new Date(ms - new Date(ms).getTimezoneOffset() * 60000);
  return d.toISOString().slice(0, 19);
}
function fromLocalInput(v) {
  if (!v) return null;
  const t = new Date(v).getTime();
  return Number.isFinite(t) ? t : null;
}

// Base64 of UTF-8 text and of bytes.
function b64encode(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}
function b64decode(b64) {
  const bin = atob(b64 || '');
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });
const textOf = (b64) => textDecoder.decode(b64decode(b64));
const b64OfText = (t) => b64encode(textEncoder.encode(t));
function hexOf(b64) {
  const bytes = b64decode(b64);
  const parts = [];
  for (let i = 0; i < bytes.length; i++) parts.push(bytes[i].toString(16).padStart(2, '0'));
  return parts.join(' ');
}

// ---------------------------------------------------------------------------------
// The HTTP APIs. Every call goes through api(), which adds the token, turns the
// server's JSON error into an Error with its message, and asks for a token on 401/403.
const TOKEN_KEY = 'opendata.token';
const token = () => sessionStorage.getItem(TOKEN_KEY) || '';

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  if (token()) headers.Authorization = 'Bearer ' + token();
  return headers;
}

async function api(path, opts) {
  opts = opts || {};
  const init = { method: opts.method || 'GET', headers: authHeaders({ Accept: 'application/json' }), signal: opts.signal };
  if (opts.form) {
    init.method = opts.method || 'POST';
    init.headers['Content-Type'] = 'application/x-www-form-urlencoded';
    init.body = new URLSearchParams(opts.form).toString();
  } else if (opts.json !== undefined) {
    init.method = opts.method || 'POST';
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.json);
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw await failure(resp);
  const raw = await resp.text();
  if (opts.text) return raw;
  try { return raw ? JSON.parse(raw) : null; } catch (_) { return { error: raw }; }
}

// The error a failed answer stands for: the server's JSON `error` when there is one.
// A 401 or 403 also asks for a token.
async function failure(resp) {
  const raw = await resp.text();
  let message = raw || resp.statusText;
  try { const body = JSON.parse(raw); message = body.error || body.message || message; } catch (_) { /* not JSON */ }
  if (resp.status === 401 || resp.status === 403) askToken(message);
  return new ApiError(resp.status, `${resp.status}: ${message}`);
}

// Prometheus-style answers wrap their data: {"status":"success","data":...}.
const data = (body) => (body && body.status === 'success' && 'data' in body ? body.data : body);

function askToken(reason) {
  const dialog = $('#token-dialog');
  if (dialog.open) return;
  $('#token-reason').textContent = reason || 'This server asks for a bearer token.';
  $('#token-input').value = token();
  dialog.showModal();
}

function setupToken() {
  $('#token-button').addEventListener('click', () => askToken(token() ? 'A token is set for this tab.' : 'No token is set.'));
  $('#token-form').addEventListener('submit', () => {
    const t = $('#token-input').value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY);
    route();
  });
  $('#token-clear').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    $('#token-dialog').close();
    route();
  });
}

// The server's status, kept for every view (role, version).
let serverStatus = null;
async function loadStatus() {
  serverStatus = data(await api('/api/v1/server/status'));
  const info = $('#server-info');
  info.textContent = `v${serverStatus.version} · ${serverStatus.read_only ? 'read-only replica' : 'writer'}`;
  return serverStatus;
}
const readOnly = () => !!(serverStatus && serverStatus.read_only);

// ---------------------------------------------------------------------------------
// Routing.
let current = null; // { name, teardown }

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const path = q < 0 ? raw : raw.slice(0, q);
  const params = new URLSearchParams(q < 0 ? '' : raw.slice(q + 1));
  const name = path.replace(/^\//, '').split('/')[0] || 'overview';
  return { name, params };
}

// Replaces the hash's parameters without adding a history entry (push = true adds one).
function setParams(name, params, push) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== '') qs.set(k, String(v));
  }
  const hash = `#/${name === 'overview' ? '' : name}${qs.toString() ? '?' + qs.toString() : ''}`;
  if (location.hash === hash) return;
  if (push) history.pushState(null, '', hash); else history.replaceState(null, '', hash);
}

const VIEWS = {};

async function route() {
  const { name, params } = parseHash();
  if (current && current.teardown) current.teardown();
  current = null;
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === name);
  const main = clear($('#main'));
  main.dataset.state = 'loading';
  main.dataset.view = name;
  const view = VIEWS[name];
  if (!view) {
    main.append(h('h1', null, 'Not found'), h('p', null, 'No such page: ', h('code', null, name), '. ', h('a', { href: '#/' }, 'Overview')));
    main.dataset.state = 'ready';
    return;
  }
  document.title = `OpenData · ${view.title}`;
  const ctx = { teardown: null, params };
  current = ctx;
  try {
    if (!serverStatus) await loadStatus();
    await view.render(main, params, ctx);
    if (current === ctx && main.dataset.state === 'loading') main.dataset.state = 'ready';
  } catch (e) {
    if (current !== ctx) return;
    main.append(h('p', { class: 'error' }, String(e.message || e)));
    main.dataset.state = 'error';
  }
}

// Runs `fn` now and then every `ms` until the view changes.
function every(ctx, ms, fn) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } catch (e) { /* shown by fn */ }
    if (!stopped) timer = setTimeout(tick, ms);
  };
  const prev = ctx.teardown;
  ctx.teardown = () => { stopped = true; clearTimeout(timer); if (prev) prev(); };
  return tick();
}

function onTeardown(ctx, fn) {
  const prev = ctx.teardown;
  ctx.teardown = () => { fn(); if (prev) prev(); };
}

function errorBox(el, e) {
  clear(el).append(h('p', { class: 'error' }, String(e && e.message ? e.message : e)));
}

// ---------------------------------------------------------------------------------
// Prometheus text exposition, as /metrics serves it: [{name, labels, value}].
function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let lm;
      while ((lm = re.exec(m[3]))) labels[lm[1]] = lm[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

// Which database an HTTP route belongs to, and whether it writes.
function classifyRoute(route, method) {
  if (route.startsWith('/api/v1/log/')) return ['log', route === '/api/v1/log/append'];
  if (route.startsWith('/api/v1/vector/')) return ['vector', method === 'POST' && /\/(upsert|patch|delete)$/.test(route)];
  if (route === '/api/v1/write') return ['timeseries', true];
  if (route.startsWith('/api/v1/') && !route.startsWith('/api/v1/server/')) return ['timeseries', false];
  return [null, false];
}

// Per database: acknowledged writes (group-commit jobs) and read requests, as counters.
function countersOf(samples) {
  const c = {};
  const at = (db) => (c[db] = c[db] || { writes: 0, reads: 0, writeRequests: 0 });
  for (const x of samples) {
    if (x.name === 'opendata_commit_jobs_total') at(x.labels.database).writes += x.value;
    if (x.name === 'opendata_http_requests_total') {
      const [db, write] = classifyRoute(x.labels.route || '', x.labels.method || '');
      if (!db) continue;
      if (write) at(db).writeRequests += x.value; else at(db).reads += x.value;
    }
  }
  return c;
}

VIEWS.overview = {
  title: 'Overview',
  async render(main, params, ctx) {
    main.append(h('h1', null, 'Overview'));
    const server = h('div', { class: 'panel', id: 'server-panel' });
    const cards = h('div', { class: 'cards', id: 'database-cards' });
    main.append(server, cards);
    let previous = null; // { at, counters }
    const refresh = async () => {
      let status, text, ready;
      try {
        [status, text, ready] = await Promise.all([
          loadStatus(),
          api('/metrics', { text: true }),
          fetch('/-/ready').then(async (r) => ({ ok: r.ok, text: await r.text() })),
        ]);
      } catch (e) {
        errorBox(cards, e);
        main.dataset.state = 'error';
        return;
      }
      const now = performance.now();
      const counters = countersOf(parseMetrics(text));
      const rate = (db, field) => {
        if (!previous || !previous.counters[db] || !counters[db]) return null;
        const dt = (now - previous.at) / 1000;
        return dt > 0 ? Math.max(0, (counters[db][field] - previous.counters[db][field]) / dt) : null;
      };
      let readyText = 'ready';
      if (!ready.ok) {
        try { readyText = JSON.parse(ready.text).error; } catch (_) { readyText = ready.text; }
      }
      clear(server).append(
        h('dl', { class: 'kv' },
          h('dt', null, 'Version'), h('dd', null, status.version),
          h('dt', null, 'Role'), h('dd', null, status.read_only ? 'read-only replica' : 'writer'),
          h('dt', null, 'Storage'), h('dd', { class: 'mono', id: 'storage-location' }, status.storage),
          h('dt', null, 'Uptime'), h('dd', null, fmtDuration(status.uptime_seconds)),
          h('dt', null, 'Readiness'), h('dd', null, h('span', { class: 'badge ' + (ready.ok ? 'ok' : 'bad') }, ready.ok ? 'ready' : 'not ready'), ready.ok ? '' : ' ' + readyText)));
      clear(cards);
      for (const db of status.databases) {
        const c = counters[db.name] || { writes: 0, reads: 0, writeRequests: 0 };
        const more = db.usage_complete ? '' : '≥ ';
        cards.append(h('section', { class: 'panel card', dataset: { database: db.name } },
          h('h2', null, h('a', { href: '#/' + db.name }, db.name),
            h('span', { class: 'badge ' + (db.healthy ? 'ok' : 'bad') }, db.healthy ? 'healthy' : 'failing')),
          db.error ? h('p', { class: 'error' }, db.error) : null,
          h('dl', { class: 'kv' },
            h('dt', null, 'Role'), h('dd', null, db.role),
            h('dt', null, 'Objects stored'), h('dd', { class: 'objects' }, more + fmtNum(db.objects)),
            h('dt', null, 'Bytes stored'), h('dd', { class: 'bytes' }, more + fmtBytes(db.bytes)),
            h('dt', null, 'Writes acknowledged'), h('dd', null, fmtRate(rate(db.name, 'writes')), h('span', { class: 'muted' }, ` (${fmtNum(c.writes)} total)`)),
            h('dt', null, 'Queries'), h('dd', null, fmtRate(rate(db.name, 'reads')), h('span', { class: 'muted' }, ` (${fmtNum(c.reads)} total)`)))));
      }
      previous = { at: now, counters };
      main.dataset.state = 'ready';
    };
    await every(ctx, 5000, refresh);
    main.append(h('p', { class: 'muted small' }, 'Rates are measured between refreshes (every 5 s) from ', h('a', { href: '/metrics' }, '/metrics'),
      '; sizes list the object store (cached for 30 s).'));
  },
};

// ---------------------------------------------------------------------------------
// Durations and time ranges, as PromQL writes them.
const DURATION_UNITS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
function parseDuration(text) {
  text = String(text || '').trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const re = /(\d+)(ms|s|m|h|d|w|y)/g;
  let total = 0, used = 0, m;
  while ((m = re.exec(text))) { total += Number(m[1]) * DURATION_UNITS[m[2]]; used += m[0].length; }
  return used === text.length && used > 0 ? total : null;
}
function formatDuration(secs) {
  for (const [u, n] of [['w', 604800], ['d', 86400], ['h', 3600], ['m', 60], ['s', 1]]) {
    if (secs >= n && secs % n === 0) return secs / n + u;
  }
  return secs + 's';
}
const RANGES = ['5m', '15m', '30m', '1h', '3h', '6h', '12h', '1d', '2d', '7d', '30d'];

// What PromQL has besides metric names, for completion.
const PROMQL_FUNCTIONS = ('abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max clamp_min '
  + 'cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv exp floor histogram_avg histogram_count '
  + 'histogram_fraction histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing hour idelta increase irate label_join label_replace '
  + 'last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi predict_linear present_over_time quantile_over_time rad rate resets '
  + 'round scalar sgn sin sinh sort sort_desc sort_by_label sort_by_label_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh time timestamp vector year').split(' ');
const PROMQL_AGGREGATIONS = 'sum avg min max count group stddev stdvar topk bottomk quantile count_values limitk limit_ratio'.split(' ');
const PROMQL_KEYWORDS = 'by without on ignoring group_left group_right offset bool and or unless'.split(' ');

// ---------------------------------------------------------------------------------
// The PromQL editor: a textarea with completion of metric names, label names and label
// values (from /api/v1/label/.../values and /api/v1/labels), and syntax errors checked
// by /api/v1/parse_query as you type.
function promqlEditor(initial, onRun) {
  const input = h('textarea', { id: 'expr', rows: 1, spellcheck: false, autocomplete: 'off', placeholder: 'PromQL expression, e.g. rate(http_requests_total[5m])  (Enter runs, Shift+Enter is a new line)' });
  input.value = initial || '';
  const list = h('ul', { class: 'hint', id: 'completions', hidden: true });
  const syntax = h('div', { id: 'syntax', class: 'syntax' });
  const wrap = h('div', { class: 'editor' }, input, list, syntax);
  const cache = new Map();
  const cached = (key, load) => {
    if (!cache.has(key)) cache.set(key, load().catch((e) => { cache.delete(key); throw e; }));
    return cache.get(key);
  };
  const metricNames = () => cached('names', async () => data(await api('/api/v1/label/__name__/values')) || []);
  const labelNames = (metric) => cached('labels:' + metric, async () => {
    const q = metric ? '?' + new URLSearchParams({ 'match[]': metric }) : '';
    return (data(await api('/api/v1/labels' + q)) || []).filter((n) => n !== '__name__');
  });
  const labelValues = (label, metric) => cached(`values:${label}:${metric}`, async () => {
    const q = metric ? '?' + new URLSearchParams({ 'match[]': metric }) : '';
    return data(await api(`/api/v1/label/${encodeURIComponent(label)}/values${q}`)) || [];
  });

  let items = [], active = 0, replaceFrom = 0, suffix = '';
  const close = () => { list.hidden = true; items = []; };
  const showItems = (candidates, prefix, from, add) => {
    const p = prefix.toLowerCase();
    // A name typed in full needs no completion, unless accepting it adds something
    // (a label's '=', a value's closing quote).
    items = candidates.filter((c) => c.text.toLowerCase().startsWith(p) && (add || c.text !== prefix)).slice(0, 200);
    if (!items.length) return close();
    replaceFrom = from; suffix = add || ''; active = 0;
    clear(list);
    items.forEach((c, i) => list.append(h('li', { class: i === 0 ? 'active' : '', dataset: { index: i }, onmousedown: (e) => { e.preventDefault(); accept(i); } },
      h('span', null, c.text), h('span', { class: 'kind' }, c.kind))));
    list.hidden = false;
  };
  const accept = (i) => {
    const c = items[i];
    if (!c) return;
    const pos = input.selectionStart;
    const before = input.value.slice(0, replaceFrom), after = input.value.slice(pos);
    const insert = c.text + (after.startsWith(suffix) ? '' : suffix);
    input.value = before + insert + after;
    const caret = before.length + c.text.length + suffix.length;
    input.setSelectionRange(caret, caret);
    close();
    input.focus();
    check();
  };

  let completeSeq = 0;
  async function complete(force) {
    const mine = ++completeSeq;
    const pos = input.selectionStart;
    const show = (...args) => { if (mine === completeSeq) showItems(...args); };
    const pre = input.value.slice(0, pos);
    try {
      const open = pre.lastIndexOf('{'), shut = pre.lastIndexOf('}');
      if (open > shut) {
        const inner = pre.slice(open + 1);
        const metricMatch = /([a-zA-Z_:][\w:]*)\s*$/.exec(pre.slice(0, open));
        const metric = metricMatch ? metricMatch[1] : '';
        const v = /([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)$/.exec(inner);
        if (v) {
          const values = await labelValues(v[1], metric);
          return show(values.map((t) => ({ text: t, kind: v[1] })), v[3], pos - v[3].length, '"');
        }
        const n = /(?:^|,)\s*([a-zA-Z_]\w*)?$/.exec(inner);
        if (n) {
          const prefix = n[1] || '';
          if (!prefix && !force) return close();
          const names = await labelNames(metric);
          return show(names.map((t) => ({ text: t, kind: 'label' })), prefix, pos - prefix.length, '=');
        }
        return close();
      }
      const grouping = /\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)$/.exec(pre);
      if (grouping) {
        const m = /([a-zA-Z_]\w*)?$/.exec(grouping[2]);
        const prefix = m[1] || '';
        const names = await labelNames('');
        return show(names.map((t) => ({ text: t, kind: 'label' })), prefix, pos - prefix.length);
      }
      if (/"[^"]*$/.test(pre.replace(/"(?:[^"\\]|\\.)*"/g, ''))) return close();
      const word = /([a-zA-Z_:][\w:]*)$/.exec(pre);
      const prefix = word ? word[1] : '';
      if (!prefix && !force) return close();
      const names = await metricNames();
      const candidates = names.map((t) => ({ text: t, kind: 'metric' }))
        .concat(PROMQL_AGGREGATIONS.map((t) => ({ text: t, kind: 'aggregation' })))
        .concat(PROMQL_FUNCTIONS.map((t) => ({ text: t, kind: 'function' })))
        .concat(PROMQL_KEYWORDS.map((t) => ({ text: t, kind: 'keyword' })));
      show(candidates, prefix, pos - prefix.length);
    } catch (e) {
      close();
    }
  }

  // Syntax check: the server's parser says what is wrong, and where.
  let checkTimer = null, checkSeq = 0;
  function check() {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(async () => {
      const seq = ++checkSeq;
      const expr = input.value;
      if (!expr.trim()) { clear(syntax); input.classList.remove('invalid'); return; }
      try {
        await api('/api/v1/parse_query', { form: { query: expr } });
        if (seq === checkSeq) { clear(syntax); input.classList.remove('invalid'); }
      } catch (e) {
        if (seq !== checkSeq || !(e instanceof ApiError) || e.status !== 400) return;
        showSyntaxError(syntax, expr, e.message.replace(/^400: /, ''));
        input.classList.add('invalid');
      }
    }, 250);
  }

  input.addEventListener('input', () => { autoGrow(input); complete(false); check(); });
  input.addEventListener('blur', () => setTimeout(close, 100));
  input.addEventListener('keydown', (e) => {
    if (!list.hidden && items.length) {
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault();
        active = (active + (e.key === 'ArrowDown' ? 1 : items.length - 1)) % items.length;
        list.querySelectorAll('li').forEach((li, i) => li.classList.toggle('active', i === active));
        list.children[active].scrollIntoView({ block: 'nearest' });
        return;
      }
      if (e.key === 'Tab' || e.key === 'Enter') { e.preventDefault(); accept(active); return; }
      if (e.key === 'Escape') { e.preventDefault(); close(); return; }
    }
    if (e.key === ' ' && e.ctrlKey) { e.preventDefault(); complete(true); return; }
    if (e.key === 'Enter' && !e.shiftKey) { e.preventDefault(); close(); onRun(); }
  });
  setTimeout(() => autoGrow(input), 0);
  if (input.value) check();
  return { el: wrap, input, value: () => input.value.trim(), set: (v) => { input.value = v; autoGrow(input); check(); } };
}

function autoGrow(ta) {
  ta.rows = Math.min(12, Math.max(1, ta.value.split('\n').length));
}

// Where brackets or quotes go wrong: the offset of a closer without an opener, of an
// opener never closed, or of a string never ended; null when they balance.
function locateError(expr) {
  const stack = [];
  const pairs = { ')': '(', ']': '[', '}': '{' };
  for (let i = 0; i < expr.length; i++) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      const start = i;
      for (i++; i < expr.length && expr[i] !== c; i++) if (expr[i] === '\\' && c !== '`') i++;
      if (i >= expr.length) return start;
    } else if (c === '#') {
      while (i < expr.length && expr[i] !== '\n') i++;
    } else if (c === '(' || c === '[' || c === '{') {
      stack.push(i);
    } else if (pairs[c]) {
      if (!stack.length || expr[stack[stack.length - 1]] !== pairs[c]) return i;
      stack.pop();
    }
  }
  return stack.length ? stack[stack.length - 1] : null;
}

// A parse error with its position: "1:14: parse error: ..." gives line and column;
// otherwise the position the message names ("at char 14"); otherwise, where brackets or
// quotes fail to balance.
function showSyntaxError(el, expr, message) {
  clear(el);
  let line = null, col = null;
  const lc = /(?:^|\D)(\d+):(\d+):/.exec(message);
  if (lc) { line = Number(lc[1]); col = Number(lc[2]); }
  else {
    const at = /(?:position|pos|char(?:acter)?|offset)\s+(\d+)/i.exec(message);
    const offset = at ? Number(at[1]) : locateError(expr);
    if (offset !== null) {
      const before = expr.slice(0, offset).split('\n');
      line = before.length; col = before[before.length - 1].length + 1;
    }
  }
  el.append(h('div', { class: 'error', id: 'syntax-error', dataset: { line: line || '', column: col || '' } }, message));
  if (line !== null) {
    const text = expr.split('\n')[line - 1] || '';
    el.append(h('div', null, text), h('div', { class: 'caret' }, ' '.repeat(Math.max(0, col - 1)) + '^ ' + `line ${line}, column ${col}`));
  }
}

// ---------------------------------------------------------------------------------
// The graph: an SVG of a range query's matrix, lines or stacked areas, with a legend
// (click a series to hide it, double-click to show it alone), values on hover, and
// zoom by selecting a time range with the mouse.
const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf',
  '#393b79', '#e7969c', '#637939', '#8c6d31', '#843c39', '#7b4173'];
const MAX_GRAPH_SERIES = 500;

function seriesName(metric) {
  const name = metric.__name__ || '';
  const labels = Object.keys(metric).filter((k) => k !== '__name__').sort().map((k) => `${k}=${JSON.stringify(metric[k])}`);
  return labels.length ? `${name}{${labels.join(', ')}}` : name || '{}';
}

function niceStep(range, target) {
  const raw = range / Math.max(1, target);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800, 2592000].map((x) => x * 1000);

function timeTicks(start, end, target) {
  const step = TIME_STEPS.find((s) => (end - start) / s <= target) || TIME_STEPS[TIME_STEPS.length - 1];
  const offset = step >= 3600000 ? new Date(start).getTimezoneOffset() * 60000 : 0;
  const ticks = [];
  for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) ticks.push(t);
  return { ticks, step };
}

function timeLabel(t, step, span) {
  const d = new Date(t), p = (n) => String(n).padStart(2, '0');
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  if (step < 60000) return `${hm}:${p(d.getSeconds())}`;
  if (span > 86400000 * 1.5) return `${p(d.getMonth() + 1)}-${p(d.getDate())} ${hm}`;
  return hm;
}

// At most two points per pixel column (the lowest and the highest, in time order), so a
// long, dense range draws as fast as a short one and keeps its spikes.
function decimate(points, x0, x1, width) {
  if (points.length <= width * 2) return points;
  const out = [];
  const scale = width / Math.max(1, x1 - x0);
  let col = null, lo = null, hi = null;
  const flush = () => {
    if (!lo) return;
    if (lo === hi) out.push(lo); else if (lo[0] < hi[0]) out.push(lo, hi); else out.push(hi, lo);
  };
  for (const p of points) {
    const c = Math.floor((p[0] - x0) * scale);
    if (c !== col || p[1] === null) { flush(); col = c; lo = hi = null; }
    if (p[1] === null) { out.push(p); continue; }
    if (!lo || p[1] < lo[1]) lo = p;
    if (!hi || p[1] > hi[1]) hi = p;
  }
  flush();
  return out;
}

function graph(result, opts) {
  const { start, end, step, stacked, onZoom } = opts;
  const wrap = h('div', { class: 'graph-wrap', id: 'graph' });
  const tooltip = h('div', { class: 'tooltip', hidden: true });
  const legend = h('ul', { class: 'legend', id: 'legend' });
  const shown = result.slice(0, MAX_GRAPH_SERIES);
  const series = shown.map((r, i) => {
    const values = (r.values || []).map(([t, v]) => [t * 1000, Number(v)]);
    const hist = (r.histograms || []).map(([t, hv]) => [t * 1000, Number(hv.count)]);
    const points = values.concat(hist).sort((a, b) => a[0] - b[0]);
    return { name: seriesName(r.metric || {}), color: PALETTE[i % PALETTE.length], points, visible: true, histogram: hist.length > 0 };
  });
  const width = Math.max(480, opts.width || 900), height = 320;
  const m = { left: 64, right: 14, top: 10, bottom: 26 };
  const pw = width - m.left - m.right, ph = height - m.top - m.bottom;
  const svg = s('svg', { viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'graph' });
  wrap.append(svg, tooltip);
  const x = (t) => m.left + (t - start) / Math.max(1, end - start) * pw;
  const stepMs = step * 1000;

  // Stacked: every series on the step grid, zero where it has no sample.
  const grid = [];
  for (let t = start; t <= end + 1e-6; t += stepMs) grid.push(Math.round(t));
  const valueAt = (sr) => {
    const map = new Map();
    for (const [t, v] of sr.points) map.set(Math.round(t), v);
    return map;
  };
  const maps = series.map(valueAt);

  function draw() {
    clear(svg);
    const vis = series.map((sr, i) => [sr, i]).filter(([sr]) => sr.visible);
    let lo = Infinity, hi = -Infinity;
    let stacks = null;
    if (stacked) {
      stacks = new Map();
      const acc = grid.map(() => 0);
      for (const [, i] of vis) {
        const lower = acc.slice();
        grid.forEach((t, k) => { const v = maps[i].get(t); if (Number.isFinite(v)) acc[k] += v; });
        stacks.set(i, { lower, upper: acc.slice() });
        for (const v of acc) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
      }
      lo = Math.min(lo, 0);
    } else {
      for (const [sr] of vis) for (const [, v] of sr.points) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    }
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= Math.abs(lo) * 0.1 || 1; hi += Math.abs(hi) * 0.1 || 1; }
    const ystep = niceStep(hi - lo, 5);
    lo = Math.floor(lo / ystep) * ystep; hi = Math.ceil(hi / ystep) * ystep;
    const y = (v) => m.top + ph - (v - lo) / (hi - lo) * ph;

    const gridG = s('g', { class: 'grid' }), axis = s('g', { class: 'axis' });
    for (let v = lo; v <= hi + ystep / 2; v += ystep) {
      gridG.append(s('line', { x1: m.left, x2: m.left + pw, y1: y(v), y2: y(v) }));
      axis.append(s('text', { x: m.left - 6, y: y(v) + 4, 'text-anchor': 'end' }, fmtNum(Number(v.toPrecision(12)))));
    }
    const { ticks, step: tstep } = timeTicks(start, end, Math.max(2, Math.floor(pw / 90)));
    for (const t of ticks) {
      gridG.append(s('line', { x1: x(t), x2: x(t), y1: m.top, y2: m.top + ph }));
      axis.append(s('text', { x: x(t), y: height - 8, 'text-anchor': 'middle' }, timeLabel(t, tstep, end - start)));
    }
    svg.append(gridG, axis, s('rect', { x: m.left, y: m.top, width: pw, height: ph, fill: 'none', stroke: '#d9dee5' }));

    const plot = s('g', { class: 'plot' });
    for (const [sr, i] of vis) {
      let d = '';
      if (stacked) {
        const { lower, upper } = stacks.get(i);
        let area = '';
        grid.forEach((t, k) => { area += (k ? 'L' : 'M') + x(t).toFixed(1) + ' ' + y(upper[k]).toFixed(1); });
        for (let k = grid.length - 1; k >= 0; k--) area += 'L' + x(grid[k]).toFixed(1) + ' ' + y(lower[k]).toFixed(1);
        plot.append(s('path', { class: 'area', d: area + 'Z', fill: sr.color }));
        grid.forEach((t, k) => { d += (k ? 'L' : 'M') + x(t).toFixed(1) + ' ' + y(upper[k]).toFixed(1); });
      } else {
        let prev = null;
        const pts = decimate(sr.points.map((p) => (Number.isFinite(p[1]) ? p : [p[0], null])), start, end, pw);
        for (const [t, v] of pts) {
          if (v === null) { prev = null; continue; }
          const gap = prev === null || t - prev > stepMs * 1.5 + 1;
          d += (gap ? 'M' : 'L') + x(t).toFixed(1) + ' ' + y(v).toFixed(1);
          prev = t;
        }
        // A lone point would draw nothing: give it a dot's width.
        if (/^M[^L]*$/.test(d)) d += 'h0.01';
        d = d.replace(/M([\d.]+) ([\d.]+)(?=M|$)/g, 'M$1 $2h0.01');
      }
      plot.append(s('path', { class: 'series', d, stroke: sr.color, 'stroke-linecap': 'round', dataset: { index: i } }));
    }
    svg.append(plot);
    svg.setAttribute('data-series', String(vis.length));
    svg.append(s('line', { class: 'hover-line', x1: 0, x2: 0, y1: m.top, y2: m.top + ph, visibility: 'hidden' }));
    svg.append(s('rect', { class: 'selection', x: 0, y: m.top, width: 0, height: ph, visibility: 'hidden' }));
    svg.append(s('rect', { class: 'overlay', x: m.left, y: m.top, width: pw, height: ph, fill: 'transparent' }));
    wire();
  }

  // Hover and selection, in the SVG's own coordinates.
  function svgX(ev) {
    const r = svg.getBoundingClientRect();
    return (ev.clientX - r.left) * (width / r.width);
  }
  const tAt = (px) => start + (Math.min(Math.max(px, m.left), m.left + pw) - m.left) / pw * (end - start);
  let dragFrom = null;
  function wire() {
    const overlay = svg.querySelector('.overlay'), line = svg.querySelector('.hover-line'), sel = svg.querySelector('.selection');
    overlay.addEventListener('mousemove', (ev) => {
      const px = svgX(ev);
      if (dragFrom !== null) {
        const a = Math.min(dragFrom, px), b = Math.max(dragFrom, px);
        sel.setAttribute('x', a); sel.setAttribute('width', b - a); sel.setAttribute('visibility', 'visible');
      }
      const k = Math.round((tAt(px) - start) / stepMs);
      const t = grid[Math.min(Math.max(k, 0), grid.length - 1)];
      line.setAttribute('x1', x(t)); line.setAttribute('x2', x(t)); line.setAttribute('visibility', 'visible');
      const rows = series.map((sr, i) => [sr, maps[i].get(t)]).filter(([sr, v]) => sr.visible && v !== undefined)
        .sort((a, b) => b[1] - a[1]).slice(0, 20);
      clear(tooltip).append(h('div', null, h('b', null, fmtTime(t))));
      for (const [sr, v] of rows) {
        const sw = h('span', { class: 'swatch' });
        sw.style.background = sr.color;
        tooltip.append(h('div', null, sw, fmtNum(v), ' ', h('span', { class: 'labels' }, sr.name)));
      }
      if (!rows.length) tooltip.append(h('div', { class: 'muted' }, 'no samples at this time'));
      tooltip.hidden = false;
      const r = svg.getBoundingClientRect();
      const left = ev.clientX - r.left + 14;
      tooltip.style.left = Math.min(left, r.width - 260) + 'px';
      tooltip.style.top = (ev.clientY - r.top + 10) + 'px';
    });
    overlay.addEventListener('mouseleave', () => { tooltip.hidden = true; line.setAttribute('visibility', 'hidden'); });
    overlay.addEventListener('mousedown', (ev) => { ev.preventDefault(); dragFrom = svgX(ev); });
    overlay.addEventListener('mouseup', (ev) => {
      if (dragFrom === null) return;
      const a = Math.min(dragFrom, svgX(ev)), b = Math.max(dragFrom, svgX(ev));
      dragFrom = null;
      sel.setAttribute('visibility', 'hidden');
      if (b - a >= 4 && onZoom) onZoom(Math.round(tAt(a)), Math.round(tAt(b)));
    });
  }

  series.forEach((sr, i) => {
    const sw = h('span', { class: 'swatch' });
    sw.style.background = sr.color;
    const li = h('li', { title: 'click: hide or show · double-click: show only this', dataset: { index: i } }, sw, sr.name, sr.histogram ? h('span', { class: 'muted' }, ' (native histogram: count)') : null);
    li.addEventListener('click', () => { sr.visible = !sr.visible; li.classList.toggle('off', !sr.visible); draw(); });
    li.addEventListener('dblclick', () => {
      const only = series.every((o) => o === sr || !o.visible);
      series.forEach((o) => { o.visible = only || o === sr; });
      legend.querySelectorAll('li').forEach((el, k) => el.classList.toggle('off', !series[k].visible));
      draw();
    });
    legend.append(li);
  });
  draw();
  const note = result.length > MAX_GRAPH_SERIES ? h('p', { class: 'warning' }, `Showing the first ${MAX_GRAPH_SERIES} of ${result.length} series.`) : null;
  return h('div', null, note, wrap, legend);
}

// ---------------------------------------------------------------------------------
// A query result as a table: an instant vector's series and values, a range vector's
// samples, a scalar or a string.
const MAX_TABLE_ROWS = 2000;

function resultTable(res) {
  const table = h('table', { class: 'data', id: 'result-table' });
  const body = h('tbody');
  const histText = (hv) => `histogram count=${fmtNum(hv.count)} sum=${fmtNum(hv.sum)} buckets=${(hv.buckets || []).length}`;
  if (res.resultType === 'scalar' || res.resultType === 'string') {
    table.append(h('thead', null, h('tr', null, h('th', null, res.resultType), h('th', null, 'value'))));
    body.append(h('tr', null, h('td', null, fmtTime(res.result[0] * 1000)), h('td', { class: 'num' }, res.result[1])));
  } else if (res.resultType === 'vector') {
    table.append(h('thead', null, h('tr', null, h('th', null, 'series'), h('th', { class: 'num' }, 'value'))));
    for (const r of res.result.slice(0, MAX_TABLE_ROWS)) {
      const v = r.value ? r.value[1] : histText(r.histogram[1]);
      body.append(h('tr', null, h('td', { class: 'labels' }, seriesName(r.metric)), h('td', { class: 'num' }, v)));
    }
  } else {
    table.append(h('thead', null, h('tr', null, h('th', null, 'series'), h('th', null, 'values'))));
    for (const r of res.result.slice(0, MAX_TABLE_ROWS)) {
      const vals = (r.values || []).map(([t, v]) => `${v} @${t}`).concat((r.histograms || []).map(([t, hv]) => `${histText(hv)} @${t}`));
      body.append(h('tr', null, h('td', { class: 'labels' }, seriesName(r.metric)), h('td', { class: 'value-text' }, vals.join('\n'))));
    }
  }
  table.append(body);
  const n = Array.isArray(res.result) && res.resultType !== 'scalar' && res.resultType !== 'string' ? res.result.length : 1;
  const note = n > MAX_TABLE_ROWS ? h('p', { class: 'warning' }, `Showing the first ${MAX_TABLE_ROWS} of ${n} series.`) : null;
  return h('div', null, h('p', { class: 'muted small', id: 'result-count' }, `${n} ${n === 1 ? 'result' : 'results'} (${res.resultType})`), note, h('div', { class: 'scroll' }, table));
}

function warningsOf(body) {
  const w = (body.warnings || []).concat(body.infos || []);
  return w.length ? h('ul', { class: 'warning' }, w.map((x) => h('li', null, x))) : null;
}

VIEWS.timeseries = {
  title: 'Timeseries',
  async render(main, params) {
    const state = {
      expr: params.get('expr') || '',
      range: params.get('range') || '1h',
      end: params.get('end') ? Number(params.get('end')) : null,
      step: params.get('step') || '',
      tab: params.get('tab') || 'graph',
      stacked: params.get('stacked') === '1',
    };
    const save = (push) => setParams('timeseries', {
      expr: state.expr, range: state.range, end: state.end, step: state.step,
      tab: state.tab === 'graph' ? '' : state.tab, stacked: state.stacked ? '1' : '',
    }, push);

    const editor = promqlEditor(state.expr, () => run(true));
    const rangeSel = h('select', { id: 'range' }, RANGES.map((r) => h('option', { value: r, selected: r === state.range }, r)));
    if (!RANGES.includes(state.range)) rangeSel.append(h('option', { value: state.range, selected: true }, state.range));
    const endInput = h('input', { type: 'datetime-local', id: 'end', step: 1, value: state.end ? toLocalInput(state.end) : '' });
    const stepInput = h('input', { id: 'step', size: 6, placeholder: 'auto', value: state.step });
    const stackedBox = h('input', { type: 'checkbox', id: 'stacked', checked: state.stacked });
    const shift = (dir) => {
      const span = parseDuration(state.range) * 1000;
      const end = (state.end || Date.now()) + dir * span / 2;
      state.end = end >= Date.now() ? null : Math.round(end);
      endInput.value = state.end ? toLocalInput(state.end) : '';
      run(true);
    };
    const controls = h('div', { class: 'panel' },
      h('div', { class: 'row' }, editor.el, h('button', { id: 'run', type: 'button', onclick: () => run(true) }, 'Execute')),
      h('div', { class: 'row' },
        h('label', null, 'Range', rangeSel),
        h('button', { type: 'button', class: 'secondary', title: 'earlier', onclick: () => shift(-1) }, '◀'),
        h('label', null, 'End (empty: now)', endInput),
        h('button', { type: 'button', class: 'secondary', title: 'later', onclick: () => shift(1) }, '▶'),
        h('label', null, 'Step', stepInput),
        h('label', null, h('span', null, 'Stacked'), stackedBox)));
    const tabs = h('div', { class: 'tabs' });
    const out = h('div', { id: 'ts-output' });
    main.append(h('h1', null, 'Timeseries'), controls, tabs, out);
    const tabNames = [['graph', 'Graph'], ['table', 'Table'], ['explore', 'Explore']];
    for (const [id, label] of tabNames) {
      tabs.append(h('button', { type: 'button', id: 'tab-' + id, class: state.tab === id ? 'active' : '', onclick: () => { state.tab = id; tabs.querySelectorAll('button').forEach((b) => b.classList.toggle('active', b.id === 'tab-' + id)); run(true); } }, label));
    }
    rangeSel.addEventListener('change', () => { state.range = rangeSel.value; run(true); });
    endInput.addEventListener('change', () => { state.end = fromLocalInput(endInput.value); run(true); });
    stepInput.addEventListener('change', () => { state.step = stepInput.value.trim(); run(true); });
    stackedBox.addEventListener('change', () => { state.stacked = stackedBox.checked; run(false); });

    let seq = 0;
    async function run(push) {
      state.expr = editor.value();
      save(push);
      const mine = ++seq;
      main.dataset.state = 'loading';
      clear(out);
      try {
        if (state.tab === 'explore') await explore(out, (metric) => { editor.set(metric); state.tab = 'graph'; $('#tab-graph').click(); });
        else if (!state.expr) out.append(h('p', { class: 'muted' }, 'Enter an expression and press Enter. Ctrl+Space completes metric names, labels and values.'));
        else if (state.tab === 'table') await runTable(mine);
        else await runGraph(mine);
        if (mine === seq) main.dataset.state = 'ready';
      } catch (e) {
        if (mine !== seq) return;
        errorBox(out, e);
        main.dataset.state = 'error';
      }
    }

    function window_() {
      const span = parseDuration(state.range);
      if (!span) throw new Error(`range ${JSON.stringify(state.range)} is not a duration`);
      const end = state.end || Date.now();
      const start = end - span * 1000;
      let step = state.step ? parseDuration(state.step) : null;
      if (state.step && !step) throw new Error(`step ${JSON.stringify(state.step)} is not a duration`);
      // Auto: about 250 points, on a round step.
      if (!step) step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400].find((x) => x >= span / 250) || Math.ceil(span / 250);
      return { start, end, step };
    }

    async function runGraph(mine) {
      const { start, end, step } = window_();
      const t0 = performance.now();
      const body = await api('/api/v1/query_range', { form: { query: state.expr, start: start / 1000, end: end / 1000, step } });
      if (mine !== seq) return;
      const res = data(body);
      if (res.resultType !== 'matrix') throw new Error(`a range query returned a ${res.resultType}`);
      const took = Math.round(performance.now() - t0);
      out.append(warningsOf(body) || '',
        h('p', { class: 'muted small', id: 'result-count' }, `${res.result.length} series · step ${formatDuration(step)} · ${took} ms · drag across the graph to zoom`));
      if (!res.result.length) { out.append(h('p', { class: 'muted' }, 'No data in this range.')); return; }
      out.append(graph(res.result, {
        start, end, step, stacked: state.stacked, width: out.clientWidth || 900,
        onZoom: (a, b) => {
          const secs = Math.max(1, Math.round((b - a) / 1000));
          state.range = formatDuration(secs);
          if (!RANGES.includes(state.range)) rangeSel.append(h('option', { value: state.range }, state.range));
          rangeSel.value = state.range;
          state.end = b;
          endInput.value = toLocalInput(b);
          state.step = '';
          stepInput.value = '';
          run(true);
        },
      }));
    }

    async function runTable(mine) {
      const time = (state.end || Date.now()) / 1000;
      const body = await api('/api/v1/query', { form: { query: state.expr, time } });
      if (mine !== seq) return;
      out.append(warningsOf(body) || '', resultTable(data(body)));
    }

    await run(false);
  },
};

// The explorers: label names and their values, series by matcher, and metric metadata.
async function explore(out, useMetric) {
  const labelsPanel = h('div', { class: 'panel' }, h('h2', null, 'Labels'));
  const valuesPanel = h('div', { class: 'panel' }, h('h2', null, 'Values'), h('p', { class: 'muted' }, 'Pick a label.'));
  const seriesInput = h('input', { id: 'series-match', size: 50, placeholder: 'series selector, e.g. up{job="node"}' });
  const seriesOut = h('div');
  const seriesPanel = h('div', { class: 'panel' }, h('h2', null, 'Series'),
    h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); findSeries(); } }, seriesInput, h('button', { type: 'submit' }, 'Find')), seriesOut);
  const metaPanel = h('div', { class: 'panel' }, h('h2', null, 'Metadata'));
  out.append(h('div', { class: 'split' }, h('div', null, labelsPanel, valuesPanel), h('div', null, seriesPanel, metaPanel)));

  const names = data(await api('/api/v1/labels')) || [];
  const list = h('table', { class: 'data', id: 'label-names' }, h('tbody', null, names.map((n) => h('tr', { class: 'clickable', onclick: () => showValues(n) }, h('td', { class: 'mono' }, n)))));
  labelsPanel.append(h('div', { class: 'scroll' }, list));

  async function showValues(label) {
    clear(valuesPanel).append(h('h2', null, 'Values of ', h('code', null, label)));
    try {
      const values = data(await api(`/api/v1/label/${encodeURIComponent(label)}/values`)) || [];
      valuesPanel.append(h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'label-values' }, h('tbody', null, values.map((v) => {
        const selector = label === '__name__' ? v : `{${label}=${JSON.stringify(v)}}`;
        return h('tr', { class: 'clickable', title: 'find these series', onclick: () => { seriesInput.value = selector; findSeries(); } }, h('td', { class: 'mono' }, v));
      })))));
    } catch (e) { valuesPanel.append(h('p', { class: 'error' }, e.message)); }
  }

  async function findSeries() {
    clear(seriesOut);
    const match = seriesInput.value.trim();
    if (!match) return;
    try {
      const series = data(await api('/api/v1/series', { form: { 'match[]': match, limit: 1000 } })) || [];
      seriesOut.append(h('p', { class: 'muted small' }, `${series.length} series${series.length >= 1000 ? ' (the first 1000)' : ''}`),
        h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'series-table' }, h('tbody', null, series.map((m) =>
          h('tr', { class: 'clickable', title: 'graph this series', onclick: () => useMetric(seriesName(m).replace(/, /g, ',')) }, h('td', { class: 'labels' }, seriesName(m))))))));
    } catch (e) { seriesOut.append(h('p', { class: 'error' }, e.message)); }
  }

  try {
    const meta = data(await api('/api/v1/metadata')) || {};
    const rows = Object.keys(meta).sort().map((name) => {
      const m0 = meta[name][0] || {};
      return h('tr', { class: 'clickable', onclick: () => useMetric(name) }, h('td', { class: 'mono' }, name), h('td', null, m0.type || ''), h('td', null, m0.unit || ''), h('td', null, m0.help || ''));
    });
    metaPanel.append(rows.length
      ? h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'metadata-table' }, h('thead', null, h('tr', null, h('th', null, 'metric'), h('th', null, 'type'), h('th', null, 'unit'), h('th', null, 'help'))), h('tbody', null, rows)))
      : h('p', { class: 'muted' }, 'No metadata has been written.'));
  } catch (e) { metaPanel.append(h('p', { class: 'error' }, e.message)); }
}

// ---------------------------------------------------------------------------------
// Server-Sent Events over fetch (so the token goes in a header, which EventSource
// cannot do). Calls onEvent(type, data, id) per event until aborted or closed.
async function sse(path, signal, onEvent) {
  const resp = await fetch(path, { headers: authHeaders({ Accept: 'text/event-stream' }), signal });
  if (!resp.ok) throw await failure(resp);
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf += decoder.decode(value, { stream: true }).replace(/\r\n?/g, '\n');
    let cut;
    while ((cut = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let type = 'message', id = null;
      const lines = [];
      for (const line of block.split('\n')) {
        if (!line || line[0] === ':') continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = val; else if (field === 'data') lines.push(val); else if (field === 'id') id = val;
      }
      if (lines.length) onEvent(type, lines.join('\n'), id);
    }
  }
}

// A log key for people: its text when it is printable UTF-8, else its base64.
function keyLabel(b64) {
  const bytes = b64decode(b64);
  const text = textDecoder.decode(bytes);
  const printable = !/[\u0000-\u001f\u007f\ufffd]/.test(text);
  return printable && text.length ? text : `base64:${b64 || '(empty)'}`;
}

function valueCell(b64, format) {
  return format === 'hex' ? h('td', { class: 'hex' }, hexOf(b64)) : h('td', { class: 'value-text' }, textOf(b64));
}

VIEWS.log = {
  title: 'Log',
  async render(main, params, ctx) {
    const state = {
      key: params.get('key'), // base64
      mode: params.get('mode') || 'seq',
      start: params.get('start') || '',
      end: params.get('end') || '',
      from: params.get('from') ? Number(params.get('from')) : null,
      to: params.get('to') ? Number(params.get('to')) : null,
      limit: params.get('limit') || '100',
      format: params.get('format') || 'text',
      prefix: params.get('prefix') || '',
    };
    const save = () => setParams('log', state);
    const keysPanel = h('div', { class: 'panel' });
    const segmentsPanel = h('div', { class: 'panel' });
    const detail = h('div', { id: 'log-detail' });
    main.append(h('h1', null, 'Log'), h('div', { class: 'split' }, h('div', null, keysPanel, segmentsPanel), detail));

    // Keys, a page at a time.
    const prefixInput = h('input', { id: 'key-prefix', placeholder: 'key prefix', value: state.prefix, size: 18 });
    const keysBody = h('tbody');
    const more = h('button', { type: 'button', class: 'secondary', hidden: true }, 'More keys');
    keysPanel.append(h('h2', null, 'Keys'),
      h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); state.prefix = prefixInput.value; save(); loadKeys(true); } }, prefixInput, h('button', { type: 'submit', class: 'secondary' }, 'Filter')),
      h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'log-keys' }, h('thead', null, h('tr', null, h('th', null, 'key'), h('th', { class: 'num' }, 'last seq'))), keysBody)), more);
    let after = null;
    async function loadKeys(reset) {
      if (reset) { clear(keysBody); after = null; }
      const q = new URLSearchParams({ limit: 200 });
      if (state.prefix) q.set('prefix', state.prefix);
      if (after) q.set('after_base64', after);
      const page = await api('/api/v1/log/keys?' + q);
      for (const k of page.keys) {
        const tr = h('tr', { class: 'clickable' + (k.key === state.key ? ' selected' : ''), dataset: { key: k.key }, onclick: () => { state.key = k.key; state.start = ''; state.end = ''; state.from = null; save(); keysBody.querySelectorAll('tr').forEach((r) => r.classList.toggle('selected', r === tr)); showKey(); } },
          h('td', { class: 'mono' }, keyLabel(k.key)), h('td', { class: 'num' }, String(k.lastSequence)));
        keysBody.append(tr);
      }
      if (!page.keys.length && reset) keysBody.append(h('tr', null, h('td', { class: 'muted', colSpan: 2 }, 'No keys.')));
      after = page.nextAfter;
      more.hidden = !page.hasMore;
    }
    more.addEventListener('click', () => loadKeys(false));

    // Segments (the whole database's).
    async function loadSegments() {
      const segs = (await api('/api/v1/log/segments')).segments || [];
      clear(segmentsPanel).append(h('h2', null, 'Segments'), h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'log-segments' },
        h('thead', null, h('tr', null, h('th', null, 'id'), h('th', null, 'sequences'), h('th', null, 'started'))),
        h('tbody', null, segs.map((g) => h('tr', null, h('td', { class: 'num' }, g.id),
          h('td', { class: 'mono' }, `${g.startSequence} – ${g.endSequence === undefined || g.endSequence === null ? 'open' : g.endSequence}`),
          h('td', null, fmtTime(g.startTimeMs))))))));
    }

    // One key: its count, a scan, the live tail, and (on a writer) an append form.
    let tail = null;
    onTeardown(ctx, () => tail && tail.abort());
    async function showKey() {
      if (tail) { tail.abort(); tail = null; }
      clear(detail);
      if (!state.key) { detail.append(h('div', { class: 'panel' }, h('p', { class: 'muted' }, 'Pick a key to scan or tail it.'))); return; }
      const kq = 'key_base64=' + encodeURIComponent(state.key);
      const head = h('div', { class: 'panel' }, h('h2', null, 'Key ', h('code', { id: 'log-key' }, keyLabel(state.key))), h('p', { class: 'muted', id: 'log-count' }, 'counting…'));
      detail.append(head);
      api('/api/v1/log/count?' + kq).then((c) => { $('#log-count').textContent = `${fmtNum(c.count)} records`; }, (e) => { $('#log-count').textContent = e.message; });

      const modeSel = h('select', { id: 'scan-mode' }, h('option', { value: 'seq', selected: state.mode === 'seq' }, 'by sequence'), h('option', { value: 'time', selected: state.mode === 'time' }, 'by time'));
      const startInput = h('input', { id: 'scan-start', size: 10, placeholder: '0', value: state.start });
      const endInput = h('input', { id: 'scan-end', size: 10, placeholder: 'end', value: state.end });
      const fromInput = h('input', { id: 'scan-from', type: 'datetime-local', step: 1, value: state.from ? toLocalInput(state.from) : '' });
      const limitInput = h('input', { id: 'scan-limit', size: 6, value: state.limit });
      const formatSel = h('select', { id: 'scan-format' }, h('option', { value: 'text', selected: state.format === 'text' }, 'text'), h('option', { value: 'hex', selected: state.format === 'hex' }, 'hex'));
      const seqFields = h('span', { class: 'row' }, h('label', null, 'From sequence', startInput), h('label', null, 'To (exclusive)', endInput));
      const toInput = h('input', { id: 'scan-to', type: 'datetime-local', step: 1, value: state.to ? toLocalInput(state.to) : '' });
      const timeFields = h('span', { class: 'row' }, h('label', null, 'From time', fromInput), h('label', null, 'To time (exclusive)', toInput));
      const sync = () => { seqFields.hidden = modeSel.value !== 'seq'; timeFields.hidden = modeSel.value !== 'time'; };
      modeSel.addEventListener('change', sync);
      sync();
      const results = h('div', { id: 'scan-results' });
      const nextBtn = h('button', { type: 'button', class: 'secondary', hidden: true }, 'Next page');
      let next = null;
      const scan = async (fromSeq) => {
        state.mode = modeSel.value; state.start = startInput.value.trim(); state.end = endInput.value.trim();
        state.from = fromLocalInput(fromInput.value); state.to = fromLocalInput(toInput.value); state.limit = limitInput.value.trim() || '100'; state.format = formatSel.value;
        save();
        const q = new URLSearchParams({ key_base64: state.key, limit: state.limit });
        if (fromSeq !== undefined) q.set('start_seq', fromSeq);
        else if (state.mode === 'seq' && state.start) q.set('start_seq', state.start);
        if (state.mode === 'seq' && state.end) q.set('end_seq', state.end);
        if (state.mode === 'time' && state.from) q.set('start_time', state.from);
        main.dataset.state = 'loading';
        try {
          const page = await api('/api/v1/log/scan?' + q);
          if (fromSeq === undefined) clear(results);
          let table = $('#scan-table');
          if (!table) {
            table = h('table', { class: 'data', id: 'scan-table' }, h('thead', null, h('tr', null, h('th', { class: 'num' }, 'sequence'), h('th', null, 'time'), h('th', null, 'value'))), h('tbody'));
            results.append(h('div', { class: 'scroll' }, table));
          }
          // A time range's end: the log is in time order within a key, so the scan
          // stops at the first record at or after it.
          const to = state.mode === 'time' ? state.to : null;
          const entries = to ? page.entries.filter((e) => Number(e.timestampMs) < to) : page.entries;
          const ended = entries.length < page.entries.length;
          for (const e of entries) table.tBodies[0].append(h('tr', { dataset: { seq: e.sequence } }, h('td', { class: 'num' }, e.sequence), h('td', null, fmtTime(e.timestampMs)), valueCell(e.value, state.format)));
          if (!entries.length && fromSeq === undefined) results.append(h('p', { class: 'muted' }, 'No records in this range.'));
          next = page.nextSequence;
          nextBtn.hidden = ended || page.entries.length < Number(state.limit);
          main.dataset.state = 'ready';
        } catch (e) { errorBox(results, e); main.dataset.state = 'error'; }
      };
      nextBtn.addEventListener('click', () => scan(next));
      detail.append(h('div', { class: 'panel' }, h('h2', null, 'Scan'),
        h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); scan(); } }, h('label', null, 'Range', modeSel), seqFields, timeFields,
          h('label', null, 'Limit', limitInput), h('label', null, 'Show as', formatSel), h('button', { type: 'submit', id: 'scan-run' }, 'Scan')),
        results, nextBtn));

      // Live tail over /api/v1/log/stream.
      const tailList = h('tbody');
      const tailState = h('span', { class: 'muted', id: 'tail-state' }, 'stopped');
      const tailBtn = h('button', { type: 'button', id: 'tail-toggle', class: 'secondary' }, 'Start live tail');
      tailBtn.addEventListener('click', async () => {
        if (tail) { tail.abort(); tail = null; return; }
        const controller = new AbortController();
        tail = controller;
        tailBtn.textContent = 'Stop live tail';
        let from = 0;
        try {
          const keys = await api('/api/v1/log/keys?' + new URLSearchParams({ prefix_base64: state.key, limit: 1 }));
          const k = keys.keys.find((x) => x.key === state.key);
          if (k) from = Number(k.lastSequence) + 1;
        } catch (_) { /* from the start */ }
        tailState.className = 'live'; tailState.textContent = `live from sequence ${from}`;
        try {
          await sse(`/api/v1/log/stream?key_base64=${encodeURIComponent(state.key)}&start_seq=${from}`, controller.signal, (type, payload) => {
            if (type === 'error') { tailState.className = 'error'; tailState.textContent = payload; return; }
            if (type !== 'entry') return;
            const e = JSON.parse(payload);
            tailList.prepend(h('tr', { dataset: { seq: e.sequence } }, h('td', { class: 'num' }, e.sequence), h('td', null, fmtTime(e.timestampMs)), valueCell(e.value, formatSel.value)));
            while (tailList.rows.length > 500) tailList.deleteRow(-1);
          });
        } catch (e) {
          if (e.name !== 'AbortError') { tailState.className = 'error'; tailState.textContent = e.message; }
        }
        if (tail === controller) tail = null;
        if (controller.signal.aborted || tailState.className === 'live') { tailState.className = 'muted'; tailState.textContent = 'stopped'; }
        tailBtn.textContent = 'Start live tail';
      });
      detail.append(h('div', { class: 'panel' }, h('h2', null, 'Live tail'), h('p', null, tailBtn, ' ', tailState),
        h('div', { class: 'scroll' }, h('table', { class: 'data', id: 'tail-table' }, h('thead', null, h('tr', null, h('th', { class: 'num' }, 'sequence'), h('th', null, 'time'), h('th', null, 'value'))), tailList))));

      if (!readOnly()) {
        const valueInput = h('textarea', { id: 'append-value', rows: 2, cols: 50, placeholder: 'value (UTF-8 text)' });
        const outcome = h('span', { class: 'muted', id: 'append-result' });
        detail.append(h('div', { class: 'panel', id: 'append-panel' }, h('h2', null, 'Append'),
          h('form', { class: 'row', onsubmit: async (e) => {
            e.preventDefault();
            try {
              const r = await api('/api/v1/log/append', { json: { records: [{ key: state.key, value: b64OfText(valueInput.value) }], awaitDurable: true } });
              outcome.className = 'muted';
              outcome.textContent = `appended at sequence ${r.sequences[0]} (durable)`;
              valueInput.value = '';
            } catch (err) { outcome.className = 'error'; outcome.textContent = err.message; }
          } }, valueInput, h('button', { type: 'submit', id: 'append-run' }, 'Append'), outcome)));
      }
      await scan();
    }

    await Promise.all([loadKeys(true), loadSegments()]);
    await showKey();
  },
};

// ---------------------------------------------------------------------------------
// Vector: collections with their schema and index statistics, and search by id or by a
// pasted vector, with a filter and nprobe or a recall target.
function attributeChips(attrs) {
  return Object.entries(attrs || {}).map(([k, v]) => h('span', { class: 'chip' }, `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`));
}

VIEWS.vector = {
  title: 'Vector',
  async render(main, params) {
    const state = {
      collection: params.get('collection') || '',
      by: params.get('by') || 'id',
      id: params.get('id') || '',
      vector: params.get('vector') || '',
      k: params.get('k') || '10',
      nprobe: params.get('nprobe') || '',
      recall: params.get('recall') || '',
      filter: params.get('filter') || '',
    };
    const save = () => setParams('vector', state);
    const listPanel = h('div', { class: 'panel' }, h('h2', null, 'Collections'));
    const detail = h('div', { id: 'vector-detail' });
    main.append(h('h1', null, 'Vector'), h('div', { class: 'split' }, listPanel, detail));
    const collections = (data(await api('/api/v1/vector/collections')).collections) || [];
    const body = h('tbody');
    listPanel.append(h('table', { class: 'data', id: 'collections' }, h('thead', null, h('tr', null, h('th', null, 'name'), h('th', { class: 'num' }, 'dim'), h('th', null, 'metric'), h('th', { class: 'num' }, 'vectors'))), body));
    for (const c of collections) {
      const tr = h('tr', { class: 'clickable' + (c.name === state.collection ? ' selected' : ''), dataset: { name: c.name }, onclick: () => {
        state.collection = c.name; save();
        body.querySelectorAll('tr').forEach((r) => r.classList.toggle('selected', r === tr));
        show();
      } }, h('td', { class: 'mono' }, c.name), h('td', { class: 'num' }, c.dimension), h('td', null, c.metric), h('td', { class: 'num' }, fmtNum(c.vectors)));
      body.append(tr);
    }
    if (!collections.length) body.append(h('tr', null, h('td', { colSpan: 4, class: 'muted' }, 'No collections.')));
    if (!state.collection && collections.length) state.collection = collections[0].name;

    async function show() {
      clear(detail);
      if (!state.collection) return;
      const info = data(await api('/api/v1/vector/collections/' + encodeURIComponent(state.collection)));
      const attrs = Object.entries(info.attributes || {});
      detail.append(h('div', { class: 'panel', id: 'collection-info' }, h('h2', null, 'Collection ', h('code', null, info.name)),
        h('dl', { class: 'kv' },
          h('dt', null, 'Dimension'), h('dd', null, info.dimension),
          h('dt', null, 'Metric'), h('dd', null, info.metric),
          h('dt', null, 'Attributes'), h('dd', null, attrs.length ? attrs.map(([k, t]) => h('span', { class: 'chip' }, `${k}: ${t}`)) : h('span', { class: 'muted' }, 'none')),
          h('dt', null, 'Vectors'), h('dd', null, fmtNum(info.vectors)),
          h('dt', null, 'Posting lists'), h('dd', null, info.postings ? fmtNum(info.postings) : '0 (a flat list until it grows)'),
          h('dt', null, 'Posting entries'), h('dd', null, fmtNum(info.posting_entries)),
          h('dt', null, 'Index memory'), h('dd', null, fmtBytes(info.index_memory_bytes)))));

      const bySel = h('select', { id: 'search-by' }, h('option', { value: 'id', selected: state.by === 'id' }, 'by id'), h('option', { value: 'vector', selected: state.by === 'vector' }, 'by vector'));
      const idInput = h('input', { id: 'search-id', size: 24, placeholder: 'record id', value: state.id });
      const vecInput = h('textarea', { id: 'search-vector', rows: 3, cols: 60, placeholder: `[${info.dimension} numbers], JSON or comma-separated` });
      vecInput.value = state.vector;
      const kInput = h('input', { id: 'search-k', size: 5, value: state.k });
      const nprobeInput = h('input', { id: 'search-nprobe', size: 5, placeholder: 'auto', value: state.nprobe });
      const recallInput = h('input', { id: 'search-recall', size: 5, placeholder: 'e.g. 0.95', value: state.recall });
      const filterInput = h('textarea', { id: 'search-filter', rows: 2, cols: 60, placeholder: '{"color": "red"}  (optional; see docs/vector.md)' });
      filterInput.value = state.filter;
      const idFields = h('label', null, 'Id', idInput), vecFields = h('label', null, 'Vector', vecInput);
      const sync = () => { idFields.hidden = bySel.value !== 'id'; vecFields.hidden = bySel.value !== 'vector'; };
      bySel.addEventListener('change', sync);
      sync();
      const results = h('div', { id: 'search-results' });
      const search = async () => {
        Object.assign(state, { by: bySel.value, id: idInput.value.trim(), vector: vecInput.value.trim(), k: kInput.value.trim() || '10', nprobe: nprobeInput.value.trim(), recall: recallInput.value.trim(), filter: filterInput.value.trim() });
        save();
        clear(results);
        main.dataset.state = 'loading';
        try {
          let vector;
          if (state.by === 'id') {
            if (!state.id) throw new Error('give a record id');
            const got = data(await api(`/api/v1/vector/collections/${encodeURIComponent(state.collection)}/get`, { json: { ids: [state.id], fields: ['vector'] } }));
            if (!got.vectors.length) throw new Error(`no record with id ${JSON.stringify(state.id)}`);
            vector = got.vectors[0].vector;
          } else {
            const text = state.vector.replace(/^\s*\[|\]\s*$/g, '');
            vector = text.split(/[\s,]+/).filter(Boolean).map(Number);
            if (vector.some((v) => !Number.isFinite(v))) throw new Error('the vector must be numbers');
          }
          const req = { vector, k: Number(state.k), fields: ['attributes'] };
          if (state.nprobe) req.nprobe = Number(state.nprobe);
          else if (state.recall) req.recall_target = Number(state.recall);
          if (state.filter) {
            try { req.filter = JSON.parse(state.filter); } catch (e) { throw new Error('the filter is not JSON: ' + e.message); }
          }
          const t0 = performance.now();
          const res = data(await api(`/api/v1/vector/collections/${encodeURIComponent(state.collection)}/search`, { json: req }));
          const took = Math.round(performance.now() - t0);
          const st = res.stats || {};
          results.append(h('p', { class: 'muted small', id: 'search-stats' }, `${res.hits.length} hits · ${took} ms · plan ${st.plan || '?'} · ${fmtNum(st.postings_probed || 0)} posting lists probed · ${fmtNum(st.candidates_scored || 0)} candidates scored`),
            h('table', { class: 'data', id: 'hits' }, h('thead', null, h('tr', null, h('th', { class: 'num' }, '#'), h('th', null, 'id'), h('th', { class: 'num' }, 'score'), h('th', null, 'attributes'))),
              h('tbody', null, res.hits.map((hit, i) => h('tr', { dataset: { id: hit.id } }, h('td', { class: 'num' }, i + 1), h('td', { class: 'mono' }, hit.id), h('td', { class: 'num' }, fmtNum(hit.score)), h('td', null, attributeChips(hit.attributes)))))));
          main.dataset.state = 'ready';
        } catch (e) { errorBox(results, e); main.dataset.state = 'error'; }
      };
      detail.append(h('div', { class: 'panel' }, h('h2', null, 'Search'),
        h('form', { onsubmit: (e) => { e.preventDefault(); search(); } },
          h('div', { class: 'row' }, h('label', null, 'Query', bySel), idFields, vecFields),
          h('div', { class: 'row' }, h('label', null, 'k', kInput), h('label', null, 'nprobe', nprobeInput), h('label', null, 'or recall target', recallInput), h('label', null, 'Filter', filterInput),
            h('button', { type: 'submit', id: 'search-run' }, 'Search'))),
        results));
      if ((state.by === 'id' && state.id) || (state.by === 'vector' && state.vector)) await search();
    }
    await show();
  },
};

// ---------------------------------------------------------------------------------
window.addEventListener('hashchange', route);
window.addEventListener('DOMContentLoaded', () => { setupToken(); route(); });
