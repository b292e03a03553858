import { ConfigError, loadConfig } from '../config.js';
import { formatResponse, sendRequest } from '../control.js';
import { MAX_TIMER_MS, parseDuration } from '../duration.js';

export interface CheckpointOptions {
  readonly exit?: boolean;
  readonly continue?: boolean;
  readonly timeout: string;
  readonly socket?: string;
}

/**
 * `stasis checkpoint`: asks the running stasis for a dump over its control socket
 * and prints one line. Returns the exit code: 0 committed, 1 failed or unreachable.
 */
export async function checkpointCommand(options: CheckpointOptions): Promise<number> {
  if (options.exit && options.continue) throw new ConfigError('--exit/--continue', 'both', 'at most one of --exit and --continue');
  const timeoutMs = parseDuration(options.timeout);
  if (timeoutMs === undefined || timeoutMs === 0 || timeoutMs > MAX_TIMER_MS) {
    throw new ConfigError('--timeout', options.timeout, 'a positive duration of at most 596h such as 30s, 5m or 1h');
  }
  const config = loadConfig(process.env, { socket: options.socket });
  const mode = options.exit ? 'exit' : options.continue ? 'continue' : undefined;
  const response = await sendRequest(config.socket, mode ? { op: 'checkpoint', mode } : { op: 'checkpoint' }, timeoutMs);
  (response.ok ? process.stdout : process.stderr).write(`${formatResponse(response)}\n`);
  return response.ok ? 0 : 1;
}
