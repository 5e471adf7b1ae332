import { execFileSync } from 'node:child_process';
import net from 'node:net';
import { removeInstanceImages } from '../support/docker-cleanup.js';

/** Pieces shared by the lockdown tests: a TCP canary on every host address, and the clean-up check. */

export interface Canary {
  port: number;
  /** Remote addresses of every connection it accepted. */
  hits: string[];
  close(): void;
}

export async function startCanary(): Promise<Canary> {
  const hits: string[] = [];
  const server = net.createServer((socket) => {
    hits.push(String(socket.remoteAddress));
    socket.on('error', () => undefined);
    socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '0.0.0.0', resolve));
  return { port: (server.address() as net.AddressInfo).port, hits, close: () => server.close() };
}

/**
 * Removes what a test's Berth instance left (containers, images) and returns what was left:
 * containers and networks must be none.
 */
export function removeInstanceLeftovers(instance: string): {
  containers: string;
  networks: string;
} {
  const docker = (...args: string[]) => execFileSync('docker', args, { encoding: 'utf8' }).trim();
  const containers = docker('ps', '-aq', '--filter', `label=berth.instance=${instance}`);
  const networks = docker('network', 'ls', '-q', '--filter', `label=berth.instance=${instance}`);
  if (containers !== '') docker('rm', '-f', ...containers.split('\n'));
  removeInstanceImages(instance);
  return { containers, networks };
}
