/** Pure: byte sizes and durations as operators read them (status, doctor, `stasis checkpoint`). */

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 512 B, 1.5 KiB, 12.3 MiB, 2.0 GiB. */
export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < BYTE_UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${BYTE_UNITS[unit]}`;
}

/** 0.4ms, 12ms, 1.50s; '-' when unknown. */
export function formatMs(ms: number | undefined): string {
  if (ms === undefined) return '-';
  if (ms < 10) return `${Math.round(ms * 10) / 10}ms`;
  if (ms < 1000) return `${Math.round(ms)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

/** criu's microseconds as milliseconds text; '-' when criu did not report it. */
export function formatUs(us: number | undefined): string {
  return us === undefined ? '-' : formatMs(us / 1000);
}
