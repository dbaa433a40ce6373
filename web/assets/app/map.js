// An area drawn on a map for the filter builder's "inside an area" condition.
// There are no map tiles (nothing is fetched from outside the server), so the
// map is a latitude/longitude grid with the places of up to 200 of the
// workspace's own people as dots, fitted around them: clusters show where
// people are, and the area's corners are clicked around them. The corners can
// also be typed ("lat, lon; lat, lon; …"), which keeps it keyboard reachable.

import { api } from './api.js';
import { button } from './ui.js';
import { h } from './views.js';

const W = 480;
const H = 280;
const WORLD = { minLat: -60, maxLat: 75, minLon: -180, maxLon: 180 };

const round = (v) => Math.round(v * 1e4) / 1e4;
let seq = 0;

// A grid step near a fifth of `span` degrees, from a short list of round ones.
function gridStep(span) {
  return [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 45].find((s) => span / s <= 6) ?? 60;
}

export function parsePoints(text) {
  const points = [];
  for (const part of text.split(';').map((s) => s.trim()).filter(Boolean)) {
    const [lat, lon, extra] = part.split(',').map((s) => Number(s.trim()));
    if (extra !== undefined || !Number.isFinite(lat) || !Number.isFinite(lon)) return null;
    points.push([lat, lon]);
  }
  return points;
}

export const pointsText = (points) => points.map(([lat, lon]) => `${lat}, ${lon}`).join('; ');

// node.points holds the corners as [lat, lon]; `changed` runs on each edit.
export function polygonPicker(node, changed) {
  node.points ||= [];
  const canvas = h('canvas', {
    width: W,
    height: H,
    class: 'fb-map',
    'data-testid': 'filter-map',
    role: 'img',
    'aria-label': 'Map of where people are: click to add the corners of the area',
  });
  const typed = h('input', { type: 'text', id: `fb-points-${++seq}`, class: 'fb-value fb-points', 'data-testid': 'filter-points', placeholder: 'lat, lon; lat, lon; lat, lon' });
  const count = h('span', { class: 'fb-word', 'data-testid': 'filter-map-count', 'aria-live': 'polite' });
  let places = [];
  let view = { ...WORLD };

  const x = (lon) => ((lon - view.minLon) / (view.maxLon - view.minLon)) * W;
  const y = (lat) => ((view.maxLat - lat) / (view.maxLat - view.minLat)) * H;

  // Fits the view around the people's places and the corners, with a margin.
  function fit() {
    const all = [...places, ...node.points];
    if (!all.length) {
      view = { ...WORLD };
    } else {
      const lats = all.map((p) => p[0]);
      const lons = all.map((p) => p[1]);
      const [a, b, c, d] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
      const padLat = Math.max((b - a) * 0.15, 0.5);
      const padLon = Math.max((d - c) * 0.15, 0.5);
      view = { minLat: Math.max(a - padLat, -90), maxLat: Math.min(b + padLat, 90), minLon: Math.max(c - padLon, -180), maxLon: Math.min(d + padLon, 180) };
    }
    // What is shown, for anyone (or any test) mapping a place to the canvas.
    canvas.dataset.view = JSON.stringify(view);
  }

  function draw() {
    const g = canvas.getContext('2d');
    if (!g) return;
    const css = getComputedStyle(canvas);
    g.clearRect(0, 0, W, H);
    g.fillStyle = css.getPropertyValue('--map-sea').trim() || '#eef3f8';
    g.fillRect(0, 0, W, H);
    g.strokeStyle = css.getPropertyValue('--map-grid').trim() || '#d3dbe4';
    g.fillStyle = '#6b7785';
    g.font = '10px system-ui, sans-serif';
    g.lineWidth = 1;
    const latStep = gridStep(view.maxLat - view.minLat);
    for (let lat = Math.ceil(view.minLat / latStep) * latStep; lat <= view.maxLat; lat += latStep) {
      g.beginPath();
      g.moveTo(0, y(lat));
      g.lineTo(W, y(lat));
      g.stroke();
      g.fillText(`${round(lat)}°`, 3, y(lat) - 2);
    }
    const lonStep = gridStep(view.maxLon - view.minLon);
    for (let lon = Math.ceil(view.minLon / lonStep) * lonStep; lon <= view.maxLon; lon += lonStep) {
      g.beginPath();
      g.moveTo(x(lon), 0);
      g.lineTo(x(lon), H);
      g.stroke();
      g.fillText(`${round(lon)}°`, x(lon) + 2, H - 3);
    }
    g.fillStyle = 'rgba(79, 70, 229, 0.55)';
    for (const [lat, lon] of places) {
      g.beginPath();
      g.arc(x(lon), y(lat), 2.5, 0, Math.PI * 2);
      g.fill();
    }
    if (node.points.length) {
      g.beginPath();
      node.points.forEach(([lat, lon], i) => (i ? g.lineTo(x(lon), y(lat)) : g.moveTo(x(lon), y(lat))));
      if (node.points.length > 2) g.closePath();
      g.fillStyle = 'rgba(234, 88, 12, 0.18)';
      g.strokeStyle = '#ea580c';
      g.lineWidth = 2;
      if (node.points.length > 2) g.fill();
      g.stroke();
      g.fillStyle = '#ea580c';
      for (const [lat, lon] of node.points) g.fillRect(x(lon) - 3, y(lat) - 3, 6, 6);
    }
    count.textContent = node.points.length < 3 ? `${node.points.length} of at least 3 corners` : `${node.points.length} corners`;
  }

  function edited() {
    typed.value = pointsText(node.points);
    typed.classList.remove('fb-invalid');
    draw();
    changed();
  }

  canvas.addEventListener('click', (ev) => {
    const r = canvas.getBoundingClientRect();
    const px = ((ev.clientX - r.left) / r.width) * W;
    const py = ((ev.clientY - r.top) / r.height) * H;
    node.points.push([round(view.maxLat - (py / H) * (view.maxLat - view.minLat)), round(view.minLon + (px / W) * (view.maxLon - view.minLon))]);
    edited();
  });
  typed.addEventListener('change', () => {
    const points = parsePoints(typed.value);
    if (!points) {
      typed.classList.add('fb-invalid');
      return;
    }
    node.points = points;
    fit();
    edited();
  });
  const undo = button('Undo corner', () => {
    node.points.pop();
    edited();
  }, { class: 'btn btn-small', 'data-testid': 'filter-map-undo' });
  const clear = button('Clear', () => {
    node.points = [];
    edited();
  }, { class: 'btn btn-small btn-quiet', 'data-testid': 'filter-map-clear' });

  typed.value = pointsText(node.points);
  fit();
  queueMicrotask(draw);
  api('POST', '/people/search', { filter: { field: 'location', op: 'exists' }, limit: 200 })
    .then((page) => {
      places = page.items.filter((p) => p.location).map((p) => [p.location.lat, p.location.lon]);
      fit();
      draw();
    })
    .catch(() => {})
    .finally(() => (canvas.dataset.ready = 'true'));

  return [
    h('div', { class: 'fb-map-box' }, canvas, h('div', { class: 'fb-line' }, h('label', { for: typed.id, class: 'visually-hidden' }, 'Corners of the area'), typed, count, undo, clear)),
  ];
}
