/** Harmless on every run where CAP_SYS_RESOURCE is missing; never the reason for a failure. */
const HARMLESS = [/rlimit: Can't setup RLIMIT_NOFILE/];

/** criu's own error lines from its log, without the known-harmless ones; the last `max` kept. */
export function criuErrors(log: string, max = 12): string[] {
  const lines = log
    .split('\n')
    .filter((line) => /\bError\b|\(\d+\.\d+\) Error|^Error/.test(line))
    .filter((line) => !HARMLESS.some((pattern) => pattern.test(line)))
    .map((line) => line.replace(/^\(\s*\d+\.\d+\)\s*/, '').trim());
  return lines.slice(-max);
}

/** Parses `Version: 4.1.1` (criu --version) into [4, 1, 1]. */
export function parseCriuVersion(text: string): [number, number, number] | undefined {
  const match = /Version:\s*(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!match) return undefined;
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}
