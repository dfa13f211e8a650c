// The console page: one snapshot from /console/events on every change (server-sent events; the
// page never reloads), rendered with DOM calls and textContent only (no HTML from data). Buttons
// exist only for the actions the operator's role allows; the relay checks again (403).
'use strict';

const HEADERS = { 'content-type': 'application/json', 'x-requested-with': 'qrkiosk-console' };
let me = { actions: [] };
let state = null;
let selected = null;

const $ = (id) => document.getElementById(id);
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}
const can = (a) => me.actions.includes(a);
const money = (minor, cur) => `${(minor / 100).toFixed(2)} ${cur}`;
const time = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
const ago = (ms) => {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  return s < 90 ? `${s} s ago` : s < 5400 ? `${Math.round(s / 60)} min ago` : `${Math.round(s / 3600)} h ago`;
};

async function post(path, body) {
  const res = await fetch(path, { method: 'POST', headers: HEADERS, body: JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(json.error?.message ?? `HTTP ${res.status}`);
  return json;
}
async function act(path, body) {
  try {
    await post(path, body);
  } catch (err) {
    alert(err.message);
  }
}

function renderKiosks() {
  const box = $('kiosks');
  box.replaceChildren();
  for (const k of state.kiosks) {
    const stock = el('table', { class: 'stock' }, el('tr', {}, el('th', {}, 'Slot'), el('th', {}, 'SKU'), el('th', {}, 'Count')));
    for (const s of k.stock) stock.append(el('tr', { class: s.count === 0 || s.jammed ? 'low' : '' }, el('td', {}, s.slot), el('td', {}, s.sku), el('td', {}, `${s.count}/${s.full}${s.jammed ? ' jammed' : ''}`)));
    const faults = k.faults.length ? el('ul', { class: 'faults' }, ...k.faults.map((f) => el('li', {}, `${f.device}: ${f.message}`))) : el('p', { class: 'ok' }, 'no faults');
    const prices = k.priceCommands.length
      ? el('ul', { class: 'prices' }, ...k.priceCommands.map((c) => el('li', { 'data-command': c.id }, `${c.kind} by ${c.by}: ${c.state}${c.appliedAt ? ` at ${time(c.appliedAt)}` : ''}`)))
      : null;
    const actions = el('div', { class: 'actions' });
    if (can('kiosks.service')) {
      actions.append(el('button', { type: 'button', onclick: () => { const r = prompt('Reason for taking the kiosk out of service?'); if (r) act(`/console/api/kiosks/${encodeURIComponent(k.id)}/command`, { action: { kind: 'service', inService: false }, reason: r }); } }, 'Out of service'));
      actions.append(el('button', { type: 'button', onclick: () => { const r = prompt('Reason for putting the kiosk in service?'); if (r) act(`/console/api/kiosks/${encodeURIComponent(k.id)}/command`, { action: { kind: 'service', inService: true }, reason: r }); } }, 'In service'));
    }
    if (can('kiosks.test_vend')) actions.append(el('button', { type: 'button', onclick: () => { const slot = Number(prompt('Test vend: which slot?')); const r = slot && prompt('Reason?'); if (r) act(`/console/api/kiosks/${encodeURIComponent(k.id)}/command`, { action: { kind: 'test.vend', slot }, reason: r }); } }, 'Test vend'));
    if (can('stock.write')) actions.append(el('button', { type: 'button', onclick: () => { const slot = Number(prompt('Set stock: slot?')); const count = Number(prompt('Count?')); const r = slot && prompt('Reason?'); if (r) act(`/console/api/kiosks/${encodeURIComponent(k.id)}/command`, { action: { kind: 'stock.set', slots: [{ slot, count }] }, reason: r }); } }, 'Set stock'));
    if (can('prices.write')) actions.append(el('button', { type: 'button', onclick: () => { const sku = prompt('Price: SKU?'); const price = Number(prompt('New price in minor units (cents)?')); const cur = k.prices.find((p) => p.sku === sku)?.currency ?? k.prices[0]?.currency; const r = sku && price && prompt('Reason?'); if (r) act(`/console/api/kiosks/${encodeURIComponent(k.id)}/command`, { action: { kind: 'price.set', sku, price, currency: cur }, reason: r }); } }, 'Change price'));
    box.append(
      el('article', { class: `kiosk ${k.online ? 'online' : 'offline'}`, 'data-kiosk': k.id },
        el('h3', {}, k.id, ' ', el('span', { class: 'presence' }, k.online ? 'online' : 'offline')),
        el('p', {}, `last seen ${k.online ? 'now' : ago(k.lastSeen)} · screen ${k.screen ?? '—'} · agent ${k.agentVersion ?? '—'} · model ${k.model}`),
        faults, stock, prices, actions));
  }
}

function renderOrders() {
  const body = $('orders').tBodies[0];
  body.replaceChildren();
  for (const o of state.orders) {
    body.append(el('tr', { 'data-order': o.id, 'data-state': o.state, class: o.id === selected ? 'selected' : '', onclick: () => select(o.id) },
      el('td', {}, o.id), el('td', {}, o.kioskId), el('td', {}, o.title), el('td', { class: 'num' }, money(o.amount, o.currency)),
      el('td', { class: `state ${o.state}` }, o.awaitingApproval ? `${o.state} (refund awaiting approval)` : o.state), el('td', {}, time(o.updatedAt))));
  }
}

function renderReview() {
  const box = $('review');
  box.replaceChildren();
  if (!state.review.length) box.append(el('p', { class: 'ok' }, 'nothing to review'));
  for (const o of state.review) {
    const actions = el('div', { class: 'actions' }, el('button', { type: 'button', onclick: () => select(o.id) }, 'Open'));
    if (can('reviews.clear')) actions.append(el('button', { type: 'button', onclick: () => { const d = prompt('Decision (e.g. "product was given", "refunded by hand")?'); const r = d && prompt('Why?'); if (r) act(`/console/api/orders/${encodeURIComponent(o.id)}/clear-review`, { decision: d, reason: r }); } }, 'Clear review'));
    box.append(el('article', { class: 'review', 'data-review': o.id }, el('h3', {}, `${o.id} · ${o.kioskId} · ${o.title} · ${money(o.amount, o.currency)} · ${o.state}`), el('p', {}, o.needsReview), actions));
  }
}

function renderSales() {
  const body = $('sales').tBodies[0];
  body.replaceChildren();
  for (const r of state.sales) body.append(el('tr', {}, el('td', {}, r.day), el('td', {}, r.kioskId), el('td', {}, r.title), el('td', { class: 'num' }, r.count), el('td', { class: 'num' }, money(r.amount, r.currency))));
  // bar chart of the amount per day (all kiosks), drawn as SVG
  const days = new Map();
  for (const r of state.sales) days.set(r.day, (days.get(r.day) ?? 0) + r.amount);
  const entries = [...days.entries()].slice(-14);
  const NS = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(NS, 'svg');
  const W = 560, H = 160, pad = 24;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'sales per day');
  const max = Math.max(1, ...entries.map((e) => e[1]));
  const bw = entries.length ? Math.min(60, (W - pad) / entries.length) : 0;
  entries.forEach(([day, amount], i) => {
    const h = Math.round(((H - 2 * pad) * amount) / max);
    const rect = document.createElementNS(NS, 'rect');
    rect.setAttribute('x', String(pad + i * bw + 4));
    rect.setAttribute('y', String(H - pad - h));
    rect.setAttribute('width', String(Math.max(2, bw - 8)));
    rect.setAttribute('height', String(h));
    rect.setAttribute('class', 'bar');
    const title = document.createElementNS(NS, 'title');
    title.textContent = `${day}: ${(amount / 100).toFixed(2)}`;
    rect.append(title);
    const label = document.createElementNS(NS, 'text');
    label.setAttribute('x', String(pad + i * bw + bw / 2));
    label.setAttribute('y', String(H - 6));
    label.setAttribute('text-anchor', 'middle');
    label.textContent = day.slice(5);
    svg.append(rect, label);
  });
  if (!entries.length) {
    const t = document.createElementNS(NS, 'text');
    t.setAttribute('x', String(W / 2));
    t.setAttribute('y', String(H / 2));
    t.setAttribute('text-anchor', 'middle');
    t.textContent = 'no sales yet';
    svg.append(t);
  }
  $('chart').replaceChildren(svg);
}

async function select(id) {
  selected = id;
  await renderOrder();
  renderOrders();
}

async function renderOrder() {
  if (!selected) return;
  const res = await fetch(`/console/api/orders/${encodeURIComponent(selected)}/timeline`);
  if (!res.ok) return;
  const { order, timeline, pendingApproval, refusedRefunds } = await res.json();
  $('order-section').hidden = false;
  $('order-id').textContent = order.id;
  const list = el('ol', { class: 'timeline' }, ...timeline.map((t) => el('li', { 'data-step': t.step, 'data-source': t.source }, el('time', {}, time(t.at)), ' ', el('strong', {}, t.step), ` · ${t.source} (${t.who})`, t.detail ? ` · ${t.detail}` : '')));
  const actions = el('div', { class: 'actions' });
  if (can('refunds.create') && order.state === 'vended' && !pendingApproval) {
    actions.append(el('button', { type: 'button', id: 'refund', onclick: () => { const r = prompt(`Refund what is left of ${money(order.amount, order.currency)} of order ${order.id}: why?`); if (r) act(`/console/api/orders/${encodeURIComponent(order.id)}/refund`, { reason: r }); } }, 'Refund'));
    actions.append(el('button', { type: 'button', id: 'refund-part', onclick: () => { const amount = Number(prompt(`Refund part of order ${order.id}: how much, in minor units (cents)?`)); const r = amount > 0 && prompt('Why?'); if (r) act(`/console/api/orders/${encodeURIComponent(order.id)}/refund`, { reason: r, amount }); } }, 'Refund part'));
  }
  if (can('refunds.retry') && refusedRefunds && refusedRefunds.length > 0) {
    actions.append(el('button', { type: 'button', id: 'retry-refund', onclick: () => { const r = prompt(`Mercado Pago refused ${refusedRefunds.length} refund(s) of order ${order.id} (${refusedRefunds.map((x) => x.error || x.status).join('; ')}). Try again as a new refund: why?`); if (r) act(`/console/api/orders/${encodeURIComponent(order.id)}/retry-refund`, { reason: r }); } }, 'Retry refused refund'));
  }
  if (can('refunds.approve') && pendingApproval && pendingApproval.actor !== me.email) {
    actions.append(el('button', { type: 'button', id: 'approve', onclick: () => act(`/console/api/orders/${encodeURIComponent(order.id)}/approve-refund`, { reason: 'approved' }) }, `Approve refund asked by ${pendingApproval.actor}`));
  }
  $('order').replaceChildren(el('p', {}, `${order.kioskId} · ${order.title} · ${money(order.amount, order.currency)} · `, el('span', { class: `state ${order.state}`, id: 'order-state' }, order.state), order.needsReview ? ` · review: ${order.needsReview}` : ''), list, actions);
}

function render() {
  renderKiosks();
  renderReview();
  renderOrders();
  renderSales();
  void renderOrder();
}

async function start() {
  const res = await fetch('/console/api/me');
  if (res.status === 401) return location.assign('/console/login');
  me = await res.json();
  $('me').textContent = `${me.email} (${me.role})`;
  $('logout').addEventListener('click', async () => {
    await fetch('/console/logout', { method: 'POST', headers: HEADERS, body: '{}' });
    location.assign('/console/login');
  });
  const feed = new EventSource('/console/events');
  feed.addEventListener('state', (ev) => {
    state = JSON.parse(ev.data);
    document.body.dataset.stateAt = String(state.at);
    render();
  });
  feed.addEventListener('open', () => { $('live').textContent = 'live'; $('live').className = 'live on'; });
  feed.addEventListener('error', () => { $('live').textContent = 'reconnecting…'; $('live').className = 'live off'; });
}
void start();
