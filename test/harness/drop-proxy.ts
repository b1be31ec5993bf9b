/**
 * A TCP proxy on 127.0.0.1 in front of a test server, for faults: it forwards both ways and
 * can drop both sides of every connection after N bytes or on command, hold everything (a server that
 * accepted the connection but answers nothing more), or delay every chunk (a slow link, so a phase of
 * a run lasts long enough to interrupt it on a progress line).
 */
import { createServer, type Server, Socket } from 'node:net';

export interface DropProxyOptions {
  /** Drop both sides of a connection once this many bytes (both directions) went through it. */
  dropAfterBytes?: number;
  /** Delay each chunk by this much (order is kept). */
  delayMs?: number;
}

export interface DropProxy {
  readonly port: number;
  /** Bytes forwarded over every connection so far, both directions. */
  readonly bytes: number;
  /** How many connections were dropped (by the byte limit or drop()). */
  readonly dropped: number;
  /** Delays every chunk from now on by `ms` (0: none). */
  setDelay(ms: number): void;
  /** Changes the byte limit for connections opened from now on (undefined: none). */
  setDropAfter(bytes: number | undefined): void;
  /** Drops both sides of every open connection now. */
  drop(): void;
  /** Holds every byte from now on (nothing reaches either side); resume() delivers them. */
  pause(): void;
  resume(): void;
  stop(): Promise<void>;
}

interface Link {
  client: Socket;
  server: Socket;
  bytes: number;
  limit: number | undefined;
  held: (() => void)[];
}

export function startDropProxy(targetPort: number, opts: DropProxyOptions = {}): Promise<DropProxy> {
  const links = new Set<Link>();
  let total = 0;
  let dropped = 0;
  let paused = false;
  let limit = opts.dropAfterBytes;
  let delayMs = opts.delayMs ?? 0;

  const cut = (link: Link) => {
    if (!links.delete(link)) return;
    dropped += 1;
    link.client.destroy();
    link.server.destroy();
  };

  const pipe = (link: Link, from: Socket, to: Socket) => {
    from.on('data', (chunk: Buffer) => {
      if (!links.has(link)) return;
      let data = chunk;
      let last = false;
      if (link.limit !== undefined && link.bytes + data.length >= link.limit) {
        data = data.subarray(0, Math.max(0, link.limit - link.bytes));
        last = true;
      }
      link.bytes += data.length;
      total += data.length;
      const deliver = () => {
        if (!links.has(link)) return;
        if (data.length) to.write(data);
        if (last) cut(link);
      };
      const send = () => (delayMs ? setTimeout(deliver, delayMs) : deliver());
      if (paused) link.held.push(send);
      else send();
    });
  };

  const server: Server = createServer((client) => {
    const upstream = new Socket();
    const link: Link = { client, server: upstream, bytes: 0, limit, held: [] };
    links.add(link);
    client.on('error', () => {});
    upstream.on('error', () => {});
    // Either side closing ends the other, as a plain TCP relay does.
    client.on('close', () => {
      if (links.delete(link)) upstream.destroy();
    });
    upstream.on('close', () => {
      if (links.delete(link)) client.destroy();
    });
    upstream.connect(targetPort, '127.0.0.1');
    pipe(link, client, upstream);
    pipe(link, upstream, client);
  });

  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      resolve({
        port,
        get bytes() {
          return total;
        },
        get dropped() {
          return dropped;
        },
        setDelay(ms) {
          delayMs = ms;
        },
        setDropAfter(bytes) {
          limit = bytes;
        },
        drop() {
          for (const link of [...links]) cut(link);
        },
        pause() {
          paused = true;
        },
        resume() {
          paused = false;
          for (const link of links) for (const send of link.held.splice(0)) send();
        },
        stop: () =>
          new Promise<void>((done) => {
            for (const link of [...links]) {
              links.delete(link);
              link.client.destroy();
              link.server.destroy();
            }
            server.close(() => done());
          }),
      });
    });
  });
}
