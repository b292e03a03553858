import { readFileSync, writeFileSync } from 'node:fs';
import type { Logger } from '../log.js';
import { native } from '../native/index.js';

/** The PID namespace's last allocated PID (writable with CAP_SYS_ADMIN over the namespace). */
export const NS_LAST_PID = '/proc/sys/kernel/ns_last_pid';

/**
 * Makes the app's PIDs start at `floor`, so that in the next container they cannot
 * collide with the low PIDs stasis and criu take there. Writes ns_last_pid when it
 * can; when /proc/sys is read-only (Kubernetes), short-lived children move the
 * counter instead (clone3 set_tid cannot: it leaves the counter where it was).
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
    const started = performance.now();
    const result = native().raisePidFloor(floor);
    const fields = { floor, method: result.method, last_pid: result.lastPid, ms: Math.round(performance.now() - started), why: (error as Error).message };
    if (result.lastPid >= floor - 1) log.info(fields, `${NS_LAST_PID} not writable; PID floor raised another way`);
    else log.warn(fields, `${NS_LAST_PID} not writable and the PID floor is out of reach (pid_max too low?): restored PIDs may collide`);
  }
}
