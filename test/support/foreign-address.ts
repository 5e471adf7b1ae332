import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

/**
 * An address on this machine that is not one of the machine's own, for the tests of a git server
 * that both the server's host (which never connects to its own addresses: src/git/http-target.ts)
 * and sandboxes must reach: a network namespace joined to the host by a veth pair, in which a
 * small TCP forwarder listens on the namespace's address and forwards to `targetPort` on the
 * host's end of the pair (where the test's server listens). Packets stay on this machine. Needs
 * root (the Docker tests run as root). `close()` ends the forwarder and removes the namespace
 * (and with it the pair).
 */
export interface ForeignAddress {
  /** The namespace's address (not one of the host's): the URL's host. */
  address: string;
  /** The host's end of the pair: where the test's server listens. */
  hostAddress: string;
  /** The forwarder's port on `address` (the same as the target port). */
  forward(targetPort: number): Promise<void>;
  close(): Promise<void>;
}

export function openForeignAddress(): ForeignAddress {
  const id = process.pid % 100_000;
  const namespace = `berth-fa-${id}`;
  const hostEnd = `bfh${id}`;
  const nsEnd = `bfn${id}`;
  // 10.213.N.0/30 from the pid: two test files running at once get different subnets.
  const third = id % 250;
  const hostAddress = `10.213.${third}.1`;
  const address = `10.213.${third}.2`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: 'pipe' });
  const inNs = (...args: string[]) => ip('netns', 'exec', namespace, 'ip', ...args);
  try {
    ip('netns', 'del', namespace);
  } catch {
    // none left from an earlier run
  }
  ip('netns', 'add', namespace);
  ip('link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', nsEnd);
  ip('link', 'set', nsEnd, 'netns', namespace);
  ip('addr', 'add', `${hostAddress}/30`, 'dev', hostEnd);
  ip('link', 'set', hostEnd, 'up');
  inNs('addr', 'add', `${address}/30`, 'dev', nsEnd);
  inNs('link', 'set', nsEnd, 'up');
  inNs('link', 'set', 'lo', 'up');
  inNs('route', 'add', 'default', 'via', hostAddress);

  const forwarders: ChildProcess[] = [];
  return {
    address,
    hostAddress,
    async forward(targetPort) {
      const script = `
        const net = require('node:net');
        net.createServer((client) => {
          const upstream = net.connect(${targetPort}, ${JSON.stringify(hostAddress)});
          client.pipe(upstream).pipe(client);
          client.on('error', () => upstream.destroy());
          upstream.on('error', () => client.destroy());
        }).listen(${targetPort}, ${JSON.stringify(address)}, () => console.log('ready'));`;
      const child = spawn('ip', ['netns', 'exec', namespace, process.execPath, '-e', script], {
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      forwarders.push(child);
      await once(child.stdout, 'data');
    },
    async close() {
      for (const child of forwarders) {
        child.kill('SIGKILL');
        if (child.exitCode === null) await once(child, 'exit');
      }
      try {
        ip('netns', 'del', namespace);
      } catch {
        // already gone
      }
    },
  };
}
