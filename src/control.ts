import { chmodSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { formatBytes } from './format.js';
import type { Logger } from './log.js';
import { native } from './native/index.js';

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
      /** STASIS_STORE: the generation's copy in the object store */
      readonly remote?: { readonly id: string; readonly key: string; readonly compressed_bytes: number; readonly upload_ms: number };
    }
  | { readonly ok: false; readonly error: string; readonly criu_errors?: readonly string[] };

const MAX_REQUEST_BYTES = 4096;
/** How long a closing control socket waits for pending answers and then for its clients' processes to exit. */
const CLIENT_EXIT_WAIT_MS = 5000;

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

/** A client process as it was when it connected: PID and start time, so a reused PID is not mistaken for it. */
export interface Peer {
  readonly pid: number;
  readonly start: string;
}

interface PeerStat {
  readonly state: string;
  readonly ppid: number;
  readonly start: string;
}

/** Pure: state, parent and start time (field 22) from /proc/PID/stat; the command name may hold spaces and parentheses. */
export function parsePeerStat(stat: string): PeerStat | undefined {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const [state, ppid, start] = [fields[0], Number(fields[1]), fields[19]];
  return state && start && Number.isInteger(ppid) ? { state, ppid, start } : undefined;
}

function readStat(pid: number): PeerStat | undefined {
  try {
    return parsePeerStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/**
 * Pure: has the peer's process ended? A zombie has: its exit status is fixed, and the
 * SIGKILL that PID 1's exit sends through the namespace can no longer change it.
 */
export function peerEnded(peer: Peer, stat: PeerStat | undefined): boolean {
  return stat === undefined || stat.start !== peer.start || stat.state === 'Z' || stat.state === 'X';
}

/** Longest chain of a client's ancestors that is followed (a hook's shell, its runner). */
const MAX_CHAIN = 16;

/**
 * Pure: the client and the processes above it that came into the container with it,
 * e.g. the shell of a hook `sh -c 'stasis checkpoint --exit && echo done'`: parents up
 * to the one whose parent is outside our PID namespace (PPID 0). A client below
 * `self` (the app's own tree) is followed no further: stasis ends that tree itself.
 */
export function clientChain(pid: number, self: number, stat: (pid: number) => PeerStat | undefined): Peer[] {
  const chain: Peer[] = [];
  for (let current = pid; current > 0 && current !== self && chain.length < MAX_CHAIN; ) {
    const entry = stat(current);
    if (entry === undefined) break;
    chain.push({ pid: current, start: entry.start });
    if (entry.ppid === self) return chain.slice(0, 1);
    current = entry.ppid;
  }
  return chain;
}

/**
 * Who connected: SO_PEERCRED through the addon, then its chain (see clientChain).
 * Empty when the client is outside our PID namespace (PID 0), where our exit cannot
 * kill it, or when it cannot be told.
 */
function peersOf(socket: Socket, log: Logger): Peer[] {
  // net.Socket keeps its fd on the libuv handle; Node has no public API for SO_PEERCRED.
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return [];
  try {
    return clientChain(native().peerPid(fd), process.pid, readStat);
  } catch (error) {
    log.warn({ err: (error as Error).message }, 'cannot tell which process connected to the control socket');
    return [];
  }
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
  const inflight = new Set<Promise<void>>();
  let peers: Peer[] = [];
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => socket.destroy());
    const chain = peersOf(socket, log);
    const client = chain[0]?.pid;
    peers = [...peers.filter((known) => !peerEnded(known, readStat(known.pid))), ...chain];
    let buffer = '';
    socket.on('data', (chunk) => {
      buffer += chunk.toString('utf8');
      const newline = buffer.indexOf('\n');
      if (newline < 0 && buffer.length < MAX_REQUEST_BYTES) return;
      socket.removeAllListeners('data');
      const request = parseRequest(newline < 0 ? buffer : buffer.slice(0, newline));
      if ('error' in request) {
        log.warn({ error: request.error, client_pid: client }, 'control request refused');
        socket.end(`${JSON.stringify({ ok: false, error: request.error })}\n`);
        return;
      }
      log.info({ mode: request.mode ?? 'default', client_pid: client }, 'checkpoint requested over the control socket');
      const answered = handle(request)
        .catch((error: unknown): ControlResponse => ({ ok: false, error: String(error) }))
        .then((response) => void socket.end(`${JSON.stringify(response)}\n`));
      inflight.add(answered);
      void answered.finally(() => inflight.delete(answered));
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
      // PID 1's exit SIGKILLs every process of the namespace, a preStop hook that
      // printed success included (it then fails with 137). Its socket closes while Node
      // tears down, before the process has exited, and a hook's shell runs on after it,
      // so what is awaited are the processes: answers still on their way first, then
      // the exit of every client and of the hook processes above it.
      const deadline = Date.now() + CLIENT_EXIT_WAIT_MS;
      await Promise.race([Promise.allSettled(inflight), sleep(CLIENT_EXIT_WAIT_MS)]);
      for (const socket of open) socket.end();
      let waiting = peers.filter((peer) => !peerEnded(peer, readStat(peer.pid)));
      while (waiting.length > 0 && Date.now() < deadline) {
        await sleep(5);
        waiting = waiting.filter((peer) => !peerEnded(peer, readStat(peer.pid)));
      }
      if (waiting.length > 0) log.warn({ pids: waiting.map((peer) => peer.pid), waited_ms: CLIENT_EXIT_WAIT_MS }, 'control clients still running as stasis exits');
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      rmSync(path, { force: true });
    },
  };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
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
    // process exits (stasis itself watches this process's PID before it exits: close() above).
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
  const remote = response.remote === undefined ? '' : `; uploaded as ${response.remote.key} (${formatBytes(response.remote.compressed_bytes)} stored, ${response.remote.upload_ms} ms)`;
  return `checkpoint committed: generation ${response.generation}, ${formatBytes(response.bytes)}${frozen}, took ${response.duration_ms} ms (${response.mode})${remote}`;
}
