/**
 * A pod's network for runc tests that need a server on the host: a named network
 * namespace (the container joins it by path) with a veth pair to the host, and a TCP
 * relay on the host's end of the pair to a server that listens on loopback only, the way
 * a Service's virtual IP reaches a pod elsewhere. Each container gets its own, as each
 * pod on a node has its own network namespace.
 */
import { spawnSync } from 'node:child_process';
import { connect, createServer, type Server, type Socket } from 'node:net';

let serial = 0;

function ip(args: readonly string[]): void {
  const result = spawnSync('ip', args, { encoding: 'utf8', timeout: 30_000 });
  if (result.status !== 0) throw new Error(`ip ${args.join(' ')} failed (status ${result.status}): ${result.stderr}`);
}

export class PodNetwork {
  /** /run/netns/NAME: what the OCI config's network namespace `path` names. */
  readonly path: string;
  /** The host's address as the pod sees it: where the relay listens. */
  readonly hostAddress: string;
  readonly #name: string;
  readonly #relay: Server;
  readonly #sockets = new Set<Socket>();

  private constructor(name: string, hostAddress: string, relay: Server) {
    this.#name = name;
    this.path = `/run/netns/${name}`;
    this.hostAddress = hostAddress;
    this.#relay = relay;
  }

  /** A new namespace whose pod reaches 127.0.0.1:`targetPort` as `hostAddress`:`targetPort`. */
  static async create(targetPort: number): Promise<PodNetwork> {
    const n = (process.pid % 200) * 50 + (++serial % 50);
    const name = `stasis-pod-${process.pid}-${serial}`;
    // interface names have at most 15 characters; the /30 is unique per test process and network,
    // in 198.18.0.0/15, the range set aside for tests (RFC 2544), so no real network is shadowed
    const host = `sp${n}h`;
    const base = `198.18.${Math.floor(n / 64)}`;
    const hostAddress = `${base}.${(n % 64) * 4 + 1}`;
    ip(['netns', 'add', name]);
    try {
      ip(['link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name]);
      ip(['addr', 'add', `${hostAddress}/30`, 'dev', host]);
      ip(['link', 'set', host, 'up']);
      ip(['-n', name, 'addr', 'add', `${base}.${(n % 64) * 4 + 2}/30`, 'dev', 'eth0']);
      ip(['-n', name, 'link', 'set', 'eth0', 'up']);
      ip(['-n', name, 'link', 'set', 'lo', 'up']);
      const net = new PodNetwork(name, hostAddress, createServer());
      await net.#listen(targetPort);
      return net;
    } catch (error) {
      spawnSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      throw error;
    }
  }

  #listen(targetPort: number): Promise<void> {
    this.#relay.on('connection', (inbound) => {
      const outbound = connect(targetPort, '127.0.0.1');
      for (const socket of [inbound, outbound]) {
        this.#sockets.add(socket);
        socket.once('close', () => this.#sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      inbound.pipe(outbound).pipe(inbound);
      inbound.once('close', () => outbound.destroy());
      outbound.once('close', () => inbound.destroy());
    });
    return new Promise((resolve, reject) => {
      this.#relay.once('error', reject);
      this.#relay.listen(targetPort, this.hostAddress, () => resolve());
    });
  }

  /** Stops the relay and deletes the namespace (the veth pair goes with it). */
  async remove(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#relay.close(() => resolve()));
    spawnSync('ip', ['netns', 'del', this.#name], { stdio: 'ignore', timeout: 30_000 });
  }
}
