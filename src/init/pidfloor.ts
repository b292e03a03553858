import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { native } from '../native/index.js';

const NS_LAST_PID = '/proc/sys/kernel/ns_last_pid';

/**
 * Makes the app's PIDs start at `floor`, so that in the next container they cannot
 * collide with the low PIDs stasis and criu take there. Writes ns_last_pid when it
 * can; when /proc/sys is read-only (Kubernetes), clone3 with set_tid or, failing
 * that, short-lived children move the counter instead.
 */
export function raisePidFloor(floor: number, log: Logger): void {
  if (floor === 0) return;
  let last: number;
  try {
    last = Number(readFileSync(NS_LAST_PID, 'utf8').trim());
  } catch {
    last = 0;
  }
  if (last >= floor - 1) return;
  try {
    writeFileSync(NS_LAST_PID, String(floor - 1));
    log.debug({ floor, method: 'ns_last_pid' }, 'PID floor raised');
    return;
  } catch (error) {
    const result = native().raisePidFloor(floor);
    log.info({ floor, method: result.method, last_pid: result.lastPid, why: (error as Error).message }, `${NS_LAST_PID} not writable; PID floor raised another way`);
  }
}
