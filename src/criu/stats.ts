/**
 * Reads criu's stats-dump / stats-restore images: a magic header, then one
 * length-prefixed protobuf StatsEntry { dump = 1, restore = 2 } whose fields are
 * plain varints (times in microseconds).
 */
export interface DumpStats {
  readonly freezing_time_us?: number;
  readonly frozen_time_us?: number;
  readonly memdump_time_us?: number;
  readonly memwrite_time_us?: number;
  readonly pages_scanned?: number;
  readonly pages_skipped_parent?: number;
  readonly pages_written?: number;
  readonly pages_lazy?: number;
}

export interface RestoreStats {
  readonly pages_compared?: number;
  readonly pages_skipped_cow?: number;
  readonly forking_time_us?: number;
  readonly restore_time_us?: number;
  readonly pages_restored?: number;
}

const DUMP_FIELDS: Record<number, keyof DumpStats> = {
  1: 'freezing_time_us', 2: 'frozen_time_us', 3: 'memdump_time_us', 4: 'memwrite_time_us',
  5: 'pages_scanned', 6: 'pages_skipped_parent', 7: 'pages_written', 9: 'pages_lazy',
};
const RESTORE_FIELDS: Record<number, keyof RestoreStats> = {
  1: 'pages_compared', 2: 'pages_skipped_cow', 3: 'forking_time_us', 4: 'restore_time_us', 5: 'pages_restored',
};

interface Field {
  readonly number: number;
  readonly value: number | Uint8Array;
}

function readVarint(buf: Uint8Array, at: number): [number, number] {
  let value = 0;
  let scale = 1;
  for (let i = at; i < buf.length; i++) {
    const byte = buf[i] as number;
    value += (byte & 0x7f) * scale;
    scale *= 128;
    if ((byte & 0x80) === 0) return [value, i + 1];
  }
  throw new Error('truncated varint');
}

function* fields(buf: Uint8Array): Generator<Field> {
  let at = 0;
  while (at < buf.length) {
    const [tag, next] = readVarint(buf, at);
    const number = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire === 0) {
      const [value, after] = readVarint(buf, next);
      yield { number, value };
      at = after;
    } else if (wire === 2) {
      const [length, start] = readVarint(buf, next);
      yield { number, value: buf.subarray(start, start + length) };
      at = start + length;
    } else if (wire === 1) {
      at = next + 8;
    } else if (wire === 5) {
      at = next + 4;
    } else {
      throw new Error(`unsupported protobuf wire type ${wire}`);
    }
  }
}

function decode<T>(buf: Uint8Array, names: Record<number, keyof T>): T {
  const result: Record<string, number> = {};
  for (const { number, value } of fields(buf)) {
    const name = names[number];
    if (name !== undefined && typeof value === 'number') result[name as string] = value;
  }
  return result as T;
}

export function parseStatsImage(image: Uint8Array): { dump?: DumpStats; restore?: RestoreStats } {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  if (image.byteLength < 12) throw new Error('stats image too short');
  // Two magic words, then the entry's length.
  const length = view.getUint32(8, true);
  const entry = image.subarray(12, 12 + length);
  const result: { dump?: DumpStats; restore?: RestoreStats } = {};
  for (const { number, value } of fields(entry)) {
    if (number === 1 && value instanceof Uint8Array) result.dump = decode<DumpStats>(value, DUMP_FIELDS);
    if (number === 2 && value instanceof Uint8Array) result.restore = decode<RestoreStats>(value, RESTORE_FIELDS);
  }
  return result;
}
