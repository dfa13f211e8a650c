// The kiosk page that Chromium shows full screen. Self-contained (no CDN, no web font, no
// external file): it works with the network down. It draws the View objects the agent sends
// over a local WebSocket: a screen change builds the new screen off-document and swaps it in
// one step; a countdown tick changes one text node. It reconnects by itself when the agent
// restarts, and reloads itself when the agent brings a different version of this page.

const CSS = String.raw`
*{box-sizing:border-box;margin:0;padding:0}
html,body{width:100%;height:100%;overflow:hidden;background:#000;cursor:none;user-select:none;-webkit-user-select:none}
body{font-family:"DejaVu Sans","Noto Sans","Liberation Sans",Arial,Helvetica,sans-serif;font-weight:700;color:#141414}
#root{position:absolute;left:0;top:0;overflow:hidden;background:#fff;transform-origin:0 0}
.screen{position:absolute;inset:0;display:flex;overflow:hidden}
.pay{background:#fff;border-top:calc(var(--u)*0.015) solid #009ee3}
.pay .col{display:flex;flex-direction:column;min-width:0;min-height:0;padding:calc(var(--u)*0.04)}
/* nothing in a column may be squeezed (that would clip it): the script shrinks the text instead */
.pay .col>*{flex-shrink:0}
.pay .col>.grow{flex-shrink:1}
.pay.land{flex-direction:row}
.pay.land .col{flex:1 1 auto}
.pay.land .qr{flex:0 0 auto;height:100%;width:min(58%, var(--h))}
.pay.port{flex-direction:column;align-items:stretch;text-align:center}
.pay.port .col.top{flex:0 0 auto;padding-bottom:0}
.pay.port .qr{flex:1 1 auto;min-height:0}
.pay.port .col.bottom{flex:0 0 auto;align-items:center;padding-top:0}
.qr{display:flex;align-items:center;justify-content:center;min-width:0;min-height:0;overflow:hidden}
.qr svg{display:block}
.ptitle{color:#0b3d91;font-size:calc(var(--u)*0.065);line-height:1.2}
.product{font-size:calc(var(--u)*0.085);line-height:1.2;overflow:hidden;display:-webkit-box;-webkit-line-clamp:2;-webkit-box-orient:vertical;overflow-wrap:anywhere}
.price{font-size:calc(var(--u)*0.16);line-height:1.15;white-space:nowrap;margin-bottom:calc(var(--u)*0.03)}
.steps{list-style:none;color:#4a4f57;font-size:calc(var(--u)*0.058);line-height:1.25}
.steps li{margin-bottom:calc(var(--u)*0.01)}
.grow{flex:1 1 auto;min-height:calc(var(--u)*0.02)}
.count{align-self:flex-start;white-space:nowrap;background:#e6f3fc;color:#0b3d91;font-size:calc(var(--u)*0.07);line-height:1.35;padding:0 .6em;border-radius:1em;font-variant-numeric:tabular-nums}
.port .count{align-self:center}
.count.urgent{background:#c62828;color:#fff}
.hint{color:#8a9099;font-size:calc(var(--u)*0.042);margin-top:calc(var(--u)*0.012);white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.idle{flex-direction:column;background:#fff}
.idle header{background:#0b3d91;color:#fff;padding:calc(var(--u)*0.04)}
.idle h1{font-size:calc(var(--u)*0.1);line-height:1.15}
.idle header p{color:#cfe3ff;font-size:calc(var(--u)*0.045);line-height:1.2}
.menu{flex:1 1 auto;display:grid;grid-auto-flow:column;grid-template-rows:repeat(var(--rows),minmax(0,1fr));grid-template-columns:repeat(var(--cols),minmax(0,1fr));column-gap:calc(var(--u)*0.04);padding:calc(var(--u)*0.02) calc(var(--u)*0.04);min-height:0}
.item{display:flex;align-items:center;gap:calc(var(--u)*0.025);border-bottom:1px solid #e3e6ea;font-size:var(--row);min-width:0;min-height:0}
.slot{flex:0 0 auto;width:1.6em;height:1.6em;border-radius:.35em;background:#009ee3;color:#fff;display:flex;align-items:center;justify-content:center;font-size:.85em}
.name{flex:1 1 auto;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.iprice{flex:0 0 auto;white-space:nowrap}
.item.out{color:#8a9099}.item.out .slot{background:#e3e6ea;color:#8a9099}.item.out .iprice{color:#b3261e;font-size:.75em}
.note{font-size:.6em;color:#b3261e;margin-left:.4em}
.banner{background:#fff4e5;color:#7a4100;text-align:center;font-size:calc(var(--u)*0.065);padding:calc(var(--u)*0.02)}
.result{flex-direction:column;align-items:center;justify-content:center;text-align:center;color:#fff;padding:calc(var(--u)*0.06);gap:calc(var(--u)*0.03)}
.tone-brand{background:#0b3d91}.tone-ok{background:#1e7e34}.tone-warn{background:#a85400}.tone-error{background:#b3261e}.tone-neutral{background:#37474f}
.icon{width:calc(var(--u)*0.26);height:calc(var(--u)*0.26);flex:0 0 auto}
.result h1{font-size:calc(var(--u)*0.11);line-height:1.15}
.result p{font-size:calc(var(--u)*0.06);line-height:1.25}
.result .ref{font-size:calc(var(--u)*0.048);color:#f1f1f1;overflow-wrap:anywhere}
#overlay{position:absolute;inset:0;display:none;align-items:center;justify-content:center;background:#37474f;color:#fff;font-size:calc(var(--u)*0.08);text-align:center;padding:1em}
#overlay.on{display:flex}
`;

const SCRIPT = String.raw`
(function () {
  'use strict';
  var BUILD = document.documentElement.getAttribute('data-build');
  var root = document.getElementById('root');
  var overlay = document.getElementById('overlay');
  var state = { rotation: 0, view: null, key: null, svg: null, modules: 0 };
  var lastMessage = Date.now();
  var connected = false;
  var retry = 250;
  var downSince = Date.now();

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  var ICONS = {
    check: '<path d="M-0.42 0.02L-0.12 0.32L0.45 -0.3" fill="none" stroke-width="0.17"/>',
    cross: '<path d="M-0.33 -0.33L0.33 0.33M-0.33 0.33L0.33 -0.33" fill="none" stroke-width="0.17"/>',
    clock: '<circle r="0.56" fill="none" stroke-width="0.12"/><path d="M0 0V-0.38M0 0H0.28" fill="none" stroke-width="0.13"/>',
    arrow: '<path d="M0 -0.45V0.38M-0.3 0.1L0 0.4L0.3 0.1" fill="none" stroke-width="0.17"/>',
    bang: '<path d="M0 -0.45V0.1" fill="none" stroke-width="0.19"/><circle cy="0.36" r="0.11" stroke="none"/>',
    wrench: '<path d="M-0.4 0.4L0.1 -0.1" fill="none" stroke-width="0.19"/><circle cx="0.22" cy="-0.22" r="0.19" fill="none" stroke-width="0.13"/>'
  };
  var TONES = { brand: '#0b3d91', ok: '#1e7e34', warn: '#a85400', error: '#b3261e', neutral: '#37474f' };

  function icon(name, tone) {
    var c = TONES[tone] || '#37474f';
    var d = document.createElement('div');
    d.className = 'icon';
    d.innerHTML = '<svg viewBox="-1 -1 2 2" width="100%" height="100%"><circle r="1" fill="#fff"/>' +
      '<g stroke="' + c + '" fill="' + c + '" stroke-linecap="round" stroke-linejoin="round">' + (ICONS[name] || '') + '</g></svg>';
    return d;
  }

  function logical() {
    var w = window.innerWidth, h = window.innerHeight;
    return state.rotation === 90 || state.rotation === 270 ? { w: h, h: w } : { w: w, h: h };
  }

  function place() {
    var w = window.innerWidth, h = window.innerHeight, L = logical();
    root.style.width = L.w + 'px';
    root.style.height = L.h + 'px';
    var r = state.rotation;
    root.style.transform = r === 90 ? 'translate(' + w + 'px,0) rotate(90deg)' :
      r === 180 ? 'translate(' + w + 'px,' + h + 'px) rotate(180deg)' :
      r === 270 ? 'translate(0,' + h + 'px) rotate(270deg)' : 'none';
    root.style.setProperty('--u', Math.min(L.w, L.h) + 'px');
    root.style.setProperty('--h', L.h + 'px');
  }

  function pay(v) {
    var L = logical();
    var land = L.w >= L.h * 1.05;
    var s = el('div', 'screen pay ' + (land ? 'land' : 'port'));
    var top = el('div', 'col' + (land ? '' : ' top'));
    var bottom = land ? top : el('div', 'col bottom');
    if (land) top.appendChild(el('div', 'ptitle', v.title));
    if (v.product) top.appendChild(el('div', 'product', v.product));
    if (v.price) top.appendChild(el('div', 'price', v.price));
    var ol = el('ol', 'steps');
    (v.steps || []).forEach(function (t, i) { ol.appendChild(el('li', null, (i + 1) + '. ' + t)); });
    bottom.appendChild(ol);
    if (land) bottom.appendChild(el('div', 'grow'));
    if (v.countdown !== undefined) {
      var c = el('div', 'count' + (v.urgent ? ' urgent' : ''), v.countdown);
      c.id = 'count';
      bottom.appendChild(c);
    }
    if (v.hint) bottom.appendChild(el('div', 'hint', v.hint));
    var q = el('div', 'qr');
    if (state.svg) q.innerHTML = state.svg;
    if (land) { s.appendChild(top); s.appendChild(q); } else { s.appendChild(top); s.appendChild(q); s.appendChild(bottom); }
    return s;
  }

  function idle(v) {
    var s = el('div', 'screen idle');
    var hd = el('header');
    hd.appendChild(el('h1', null, v.title));
    (v.body || []).forEach(function (t) { hd.appendChild(el('p', null, t)); });
    s.appendChild(hd);
    var items = v.products || [];
    var L = logical();
    var cols = L.w >= L.h ? (L.w >= 640 ? 3 : 2) : 1;
    var need = 1;
    while (need < cols && Math.ceil(items.length / need) * 0.11 * Math.min(L.w, L.h) > L.h * 0.62) need++;
    var rows = Math.max(1, Math.ceil(items.length / need));
    var menu = el('div', 'menu');
    menu.style.setProperty('--cols', need);
    menu.style.setProperty('--rows', rows);
    menu.style.setProperty('--row', Math.max(10, Math.min(Math.min(L.w, L.h) * 0.068, (L.h * 0.6 / rows) * 0.42)) + 'px');
    items.forEach(function (p) {
      var it = el('div', 'item' + (p.available ? '' : ' out'));
      it.appendChild(el('span', 'slot', String(p.slot)));
      var n = el('span', 'name', p.name);
      it.appendChild(n);
      var right = el('span', 'iprice', p.available ? (p.price || '') : (p.note || ''));
      if (p.available && p.note) right.appendChild(el('span', 'note', p.note));
      it.appendChild(right);
      menu.appendChild(it);
    });
    s.appendChild(menu);
    if (v.banner) s.appendChild(el('div', 'banner', v.banner));
    return s;
  }

  function result(v) {
    var s = el('div', 'screen result tone-' + v.tone);
    if (v.icon) s.appendChild(icon(v.icon, v.tone));
    s.appendChild(el('h1', null, v.title));
    (v.body || []).forEach(function (t) { s.appendChild(el('p', null, t)); });
    if (v.banner) s.appendChild(el('p', null, v.banner));
    if (v.reference) s.appendChild(el('p', 'ref', v.reference));
    return s;
  }

  /** Shrinks a one-line element's font until it fits its box (the price must never be cut). */
  function shrink(e) {
    if (!e) return;
    var size = parseFloat(getComputedStyle(e).fontSize);
    var guard = 60;
    while (guard-- > 0 && size > 10 && e.scrollWidth > e.clientWidth + 0.5) {
      size = size * 0.93;
      e.style.fontSize = size + 'px';
    }
  }

  /**
   * The QR first, at a whole number of pixels per module and as large as the screen allows
   * (58% of the width beside the text, or 56% of the height above it); the text gets the rest.
   */
  function sizeQr(s) {
    var box = s.querySelector('.qr');
    var svg = box && box.querySelector('svg');
    if (!svg || !state.modules) return;
    var L = logical();
    var land = L.w >= L.h * 1.05;
    var bar = Math.max(3, Math.round(Math.min(L.w, L.h) * 0.015));
    var maxSide = land ? Math.min(L.h - bar, Math.floor(L.w * 0.58)) : Math.min(L.w, Math.floor(L.h * 0.56));
    var side = Math.max(1, Math.floor(maxSide / state.modules)) * state.modules;
    svg.setAttribute('width', String(side));
    svg.setAttribute('height', String(side));
    if (land) box.style.width = side + 'px'; else box.style.height = side + 'px';
    box.style.flex = '0 0 auto';
  }

  /** Pay screen: shrink the text until it fits around the QR (a 320x240 panel). */
  function fitColumn(s) {
    var port = s.classList.contains('port');
    var sel = port ? '.ptitle,.product,.price,.steps,.count,.hint' : '.ptitle,.product,.steps,.count,.hint';
    var cols = s.querySelectorAll('.col');
    var over = function () {
      if (s.scrollHeight > s.clientHeight + 0.5) return true;
      for (var i = 0; i < cols.length; i++) if (cols[i].scrollHeight > cols[i].clientHeight + 0.5) return true;
      return false;
    };
    var guard = 40;
    while (guard-- > 0 && over()) {
      var changed = false;
      s.querySelectorAll(sel).forEach(function (e) {
        var f = parseFloat(getComputedStyle(e).fontSize);
        if (f > 10) { e.style.fontSize = Math.max(10, f * 0.92) + 'px'; changed = true; }
      });
      if (!changed) break;
    }
    s.querySelectorAll('.price').forEach(shrink);
  }

  function render() {
    var v = state.view;
    if (!v) return;
    place();
    var s = v.screen === 'pay' ? pay(v) : v.screen === 'idle' ? idle(v) : result(v);
    s.setAttribute('data-screen', v.screen);
    s.id = 'screen';
    // build hidden, in place, then swap: the customer never sees a half-built screen
    s.style.visibility = 'hidden';
    var old = document.getElementById('screen');
    root.appendChild(s);
    if (v.screen === 'pay') { sizeQr(s); fitColumn(s); }
    s.style.visibility = '';
    if (old) old.remove();
    document.body.setAttribute('data-screen', v.screen);
    document.body.setAttribute('data-key', state.key);
  }

  function tick(m) {
    if (!state.view || m.key !== state.key) return;
    state.view.countdown = m.countdown;
    state.view.seconds = m.seconds;
    state.view.urgent = m.urgent;
    var c = document.getElementById('count');
    if (!c) return;
    if (c.firstChild) c.firstChild.nodeValue = m.countdown; else c.textContent = m.countdown;
    c.classList.toggle('urgent', !!m.urgent);
  }

  function setOverlay(on) {
    overlay.classList.toggle('on', on);
    document.body.setAttribute('data-link', on ? 'down' : 'up');
  }

  function connect() {
    var ws = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws');
    ws.onopen = function () { connected = true; retry = 250; };
    ws.onmessage = function (ev) {
      lastMessage = Date.now();
      var m = JSON.parse(ev.data);
      if (m.type === 'hello') {
        if (m.build !== BUILD) { location.reload(); return; }
        overlay.textContent = m.connecting;
        if (state.rotation !== m.rotation) { state.rotation = m.rotation; render(); }
        setOverlay(false);
      } else if (m.type === 'screen') {
        state.view = m.view; state.key = m.key; state.svg = m.svg || null; state.modules = m.modules || 0;
        render();
        setOverlay(false);
      } else if (m.type === 'tick') {
        tick(m);
      }
    };
    ws.onclose = function () {
      if (connected) downSince = Date.now();
      connected = false;
      setTimeout(connect, retry);
      retry = Math.min(retry * 2, 2000);
    };
    ws.onerror = function () { try { ws.close(); } catch (e) {} };
  }

  // No stale QR: with the agent gone (or silent) for a few seconds the screen says so.
  setInterval(function () {
    var silent = Date.now() - lastMessage > 12000;
    if ((!connected && Date.now() - downSince > 2500) || silent) setOverlay(true);
  }, 500);
  window.addEventListener('resize', render);
  place();
  connect();
})();
`;

export function pageHtml(build: string, lang: string, connecting: string): string {
  return `<!doctype html>
<html lang="${lang}" data-build="${build}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1,user-scalable=no">
<title>qrkiosk</title>
<style>${CSS}</style>
</head>
<body data-screen="none" data-link="down">
<div id="root"></div>
<div id="overlay">${escapeHtml(connecting)}</div>
<script>${SCRIPT}</script>
</body>
</html>
`;
}

export const PAGE_SOURCE = CSS + SCRIPT;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
