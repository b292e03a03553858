import { chmodSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import type { Logger } from './log.js';

/** What `stasis checkpoint` asks for; mode undefined = STASIS_AFTER_DUMP. */
export interface CheckpointRequest {
  readonly op: 'checkpoint';
  readonly mode?: 'exit' | 'continue';
}

export type ControlResponse =
  | {
      readonly ok: true;
      readonly generation: number;
      readonly bytes: number;
      readonly duration_ms: number;
      readonly frozen_ms?: number;
      readonly mode: 'exit' | 'continue';
    }
  | { readonly ok: false; readonly error: string; readonly criu_errors?: readonly string[] };

const MAX_REQUEST_BYTES = 4096;
/** How long a closing control socket waits for answered clients to exit. */
const CLIENT_EXIT_WAIT_MS = 2000;

/** Pure: one request line -> a request, or why it is not one. */
export function parseRequest(line: string): CheckpointRequest | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { error: 'bad request: not JSON' };
  }
  if (typeof value !== 'object' || value === null) return { error: 'bad request: not an object' };
  const { op, mode } = value as { op?: unknown; mode?: unknown };
  if (op !== 'checkpoint') return { error: `bad request: unknown op ${JSON.stringify(op)}; expected "checkpoint"` };
  if (mode !== undefined && mode !== 'exit' && mode !== 'continue') {
    return { error: `bad request: mode ${JSON.stringify(mode)}; expected "exit" or "continue"` };
  }
  return mode === undefined ? { op } : { op, mode };
}

export interface ControlServer {
  close(): Promise<void>;
}

/**
 * Listens on a unix socket only the owner may connect to (mode 0600). One JSON
 * line in, one JSON line out. A live socket of another stasis is left alone.
 */
export async function startControlServer(
  path: string,
  handle: (request: CheckpointRequest) => Promise<ControlResponse>,
  log: Logger,
): Promise<ControlServer | null> {
  if (await isLive(path)) {
    log.warn({ socket: path }, 'another stasis answers on the control socket; `stasis checkpoint` will not reach this one');
    return null;
  }
  rmSync(path, { force: true });
  const open = new Set<Socket>();
  const answered = new Set<Socket>();
  const answer = (socket: Socket, response: ControlResponse): void => {
    answered.add(socket);
    socket.end(`${JSON.stringify(response)}\n`);
  };
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => {
      open.delete(socket);
      answered.delete(socket);
    });
    socket.on('error', () => socket.destroy());
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const newline = buffer.indexOf('\n');
      if (newline < 0 && buffer.length < MAX_REQUEST_BYTES) return;
      socket.removeAllListeners('data');
      const request = parseRequest(newline < 0 ? buffer : buffer.slice(0, newline));
      if ('error' in request) {
        log.warn({ error: request.error }, 'control request refused');
        answer(socket, { ok: false, error: request.error });
        return;
      }
      log.info({ mode: request.mode ?? 'default' }, 'checkpoint requested over the control socket');
      handle(request).then(
        (response) => answer(socket, response),
        (error: unknown) => answer(socket, { ok: false, error: String(error) }),
      );
    });
  });
  const previous = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
  } catch (error) {
    log.error({ socket: path, err: (error as Error).message }, 'cannot open the control socket; `stasis checkpoint` will not work');
    return null;
  } finally {
    process.umask(previous);
  }
  chmodSync(path, 0o600);
  server.unref();
  log.debug({ socket: path }, 'control socket listening');
  return {
    close: async () => {
      // A client closes its end only as its process exits, after it printed the answer. Waiting
      // for that keeps PID 1's exit (which kills everything in the PID namespace) from turning a
      // preStop hook's success into exit 137.
      for (const socket of open) if (!answered.has(socket)) socket.end();
      const deadline = Date.now() + CLIENT_EXIT_WAIT_MS;
      while (answered.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(path, { force: true });
    },
  };
}

function isLive(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Client side: sends one request and waits for the answer (or the timeout). */
export function sendRequest(path: string, request: CheckpointRequest, timeoutMs: number): Promise<ControlResponse> {
  return new Promise((resolve) => {
    // Half-open: the answer's end does not close our side; the kernel closes it when this
    // process exits, which is what stasis waits for before it exits (see close() above).
    const socket = connect({ path, allowHalfOpen: true });
    let answer = '';
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ ok: false, error: `no answer within ${timeoutMs} ms (the dump may still finish)` });
    }, timeoutMs);
    const done = (response: ControlResponse, keepOpen = false): void => {
      clearTimeout(timer);
      if (keepOpen) socket.unref();
      else socket.destroy();
      resolve(response);
    };
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk) => (answer += chunk.toString('utf8')));
    socket.once('end', () => {
      try {
        done(JSON.parse(answer.trim()) as ControlResponse, true);
      } catch {
        done({ ok: false, error: `unreadable answer from stasis: ${JSON.stringify(answer.slice(0, 200))}` });
      }
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      const hint = error.code === 'ENOENT' || error.code === 'ECONNREFUSED' ? ' (is stasis running with STASIS_DIR set, and is STASIS_SOCKET the same?)' : '';
      done({ ok: false, error: `cannot reach stasis at ${path}: ${error.message}${hint}` });
    });
  });
}

/** Pure: the one-line summary `stasis checkpoint` prints. */
export function formatResponse(response: ControlResponse): string {
  if (!response.ok) {
    const errors = response.criu_errors?.length ? `\n  ${response.criu_errors.join('\n  ')}` : '';
    return `checkpoint failed: ${response.error}${errors}`;
  }
  const frozen = response.frozen_ms === undefined ? '' : `, app frozen ${response.frozen_ms} ms`;
  return `checkpoint committed: generation ${response.generation}, ${formatBytes(response.bytes)}${frozen}, took ${response.duration_ms} ms (${response.mode})`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}
