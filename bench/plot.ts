/**
 * The SVG plots: dump and restore time against image size, stasis next to raw criu,
 * with the disk's own sequential write (fsync) and read of the same bytes drawn in;
 * and the same through object storage, against the transfers alone.
 */
import type { SizeResult } from './checkpoint.ts';
import type { StoreSizeResult } from './store.ts';

interface Series {
  readonly label: string;
  readonly color: string;
  readonly dash: string;
  readonly marker: 'circle' | 'square' | 'none';
  readonly points: readonly (readonly [number, number])[];
}

const GIB = 2 ** 30;
const W = 880;
const H = 440;
const M = { left: 64, right: 300, top: 44, bottom: 52 };

function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * power).find((s) => s >= raw);
  return step ?? 10 * power;
}

const esc = (text: string): string => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const fmt = (value: number): string => String(Math.round(value * 100) / 100);
const tick = (value: number): string => String(Number.parseFloat(value.toPrecision(6)));

export function plotSvg(sizes: readonly SizeResult[], subtitle: string): string {
  return linePlot('Checkpoint and restore time against image size', subtitle, [
    { label: 'stasis dump (to committed, fsynced)', color: '#1f5fa8', dash: '', marker: 'circle', points: sizes.map((s) => [s.stasis.bytes, s.stasis.dump_ms]) },
    { label: 'raw criu dump + sync', color: '#1f5fa8', dash: '6 4', marker: 'square', points: sizes.map((s) => [s.raw.bytes, s.raw.dump_sync_ms]) },
    { label: 'disk: dd write + fsync', color: '#555555', dash: '2 3', marker: 'none', points: sizes.map((s) => [s.disk.bytes, s.disk.write_ms]) },
    { label: 'stasis restore (start → restored)', color: '#c0392b', dash: '', marker: 'circle', points: sizes.map((s) => [s.stasis.bytes, s.stasis.start_to_restored_ms]) },
    { label: 'raw criu restore -d', color: '#c0392b', dash: '6 4', marker: 'square', points: sizes.map((s) => [s.raw.bytes, s.raw.restore_ms]) },
    { label: 'disk: dd read, not cached', color: '#999999', dash: '2 3', marker: 'none', points: sizes.map((s) => [s.disk.bytes, s.disk.read_ms]) },
    { label: 'app fills its heap (fresh memory)', color: '#2e8b57', dash: '2 3', marker: 'none', points: sizes.map((s) => [s.disk.bytes, s.app_fill_ms]) },
  ]);
}

export function storePlotSvg(sizes: readonly StoreSizeResult[], subtitle: string): string {
  return linePlot('Checkpoints through object storage against image size', subtitle, [
    { label: 'stasis dump → remote commit', color: '#1f5fa8', dash: '', marker: 'circle', points: sizes.map((s) => [s.image_bytes, s.store_dump_ms]) },
    { label: 'local dump + upload alone', color: '#1f5fa8', dash: '6 4', marker: 'square', points: sizes.map((s) => [s.image_bytes, s.local_dump_ms + s.upload_alone_ms]) },
    { label: 'stasis start → restored from store', color: '#c0392b', dash: '', marker: 'circle', points: sizes.map((s) => [s.image_bytes, s.store_restore_ms]) },
    { label: 'download alone + local restore', color: '#c0392b', dash: '6 4', marker: 'square', points: sizes.map((s) => [s.image_bytes, s.download_alone_ms + s.local_restore_ms]) },
  ]);
}

function linePlot(title: string, subtitle: string, series: readonly Series[]): string {
  const all = series.flatMap((s) => s.points);
  const maxX = Math.max(...all.map(([bytes]) => bytes / GIB), 0.001);
  const maxY = Math.max(...all.map(([, ms]) => ms / 1000), 0.001);
  const stepX = niceStep(maxX, 5);
  const stepY = niceStep(maxY, 6);
  const topX = Math.ceil(maxX / stepX) * stepX;
  const topY = Math.ceil((maxY * 1.05) / stepY) * stepY;
  const plotW = W - M.left - M.right;
  const plotH = H - M.top - M.bottom;
  const x = (bytes: number): number => M.left + (bytes / GIB / topX) * plotW;
  const y = (ms: number): number => M.top + plotH - (ms / 1000 / topY) * plotH;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="${M.left}" y="20" font-size="15" font-weight="bold">${esc(title)}</text>`);
  out.push(`<text x="${M.left}" y="36" fill="#555">${esc(subtitle)}</text>`);
  for (let i = 0; i * stepY <= topY + 1e-9; i++) {
    const v = i * stepY;
    out.push(`<line x1="${M.left}" x2="${M.left + plotW}" y1="${fmt(y(v * 1000))}" y2="${fmt(y(v * 1000))}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${M.left - 6}" y="${fmt(y(v * 1000) + 4)}" text-anchor="end">${tick(v)}</text>`);
  }
  for (let i = 0; i * stepX <= topX + 1e-9; i++) {
    const v = i * stepX;
    out.push(`<line x1="${fmt(x(v * GIB))}" x2="${fmt(x(v * GIB))}" y1="${M.top}" y2="${M.top + plotH}" stroke="#e4e4e4"/>`);
    out.push(`<text x="${fmt(x(v * GIB))}" y="${M.top + plotH + 16}" text-anchor="middle">${tick(v)}</text>`);
  }
  out.push(`<rect x="${M.left}" y="${M.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#888"/>`);
  out.push(`<text x="${M.left + plotW / 2}" y="${H - 12}" text-anchor="middle">image size (GiB)</text>`);
  out.push(`<text transform="translate(16 ${M.top + plotH / 2}) rotate(-90)" text-anchor="middle">time (s)</text>`);
  series.forEach((s, index) => {
    const path = s.points.map(([bytes, ms], i) => `${i === 0 ? 'M' : 'L'}${fmt(x(bytes))} ${fmt(y(ms))}`).join(' ');
    const dash = s.dash ? ` stroke-dasharray="${s.dash}"` : '';
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"${dash}/>`);
    for (const [bytes, ms] of s.points) out.push(marker(s, x(bytes), y(ms)));
    const ly = M.top + 10 + index * 22;
    const lx = M.left + plotW + 16;
    out.push(`<line x1="${lx}" x2="${lx + 30}" y1="${ly}" y2="${ly}" stroke="${s.color}" stroke-width="2"${dash}/>`);
    out.push(marker(s, lx + 15, ly));
    out.push(`<text x="${lx + 38}" y="${ly + 4}">${esc(s.label)}</text>`);
  });
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

function marker(s: Series, cx: number, cy: number): string {
  if (s.marker === 'circle') return `<circle cx="${fmt(cx)}" cy="${fmt(cy)}" r="4" fill="${s.color}"/>`;
  if (s.marker === 'square') return `<rect x="${fmt(cx - 3.5)}" y="${fmt(cy - 3.5)}" width="7" height="7" fill="#fff" stroke="${s.color}" stroke-width="2"/>`;
  return '';
}
