import net from 'node:net';
import type { BerthConfig } from '../config/config.js';
import { describeUpstreamProxy, type UpstreamProxy } from './upstream-proxy.js';

/** One line of `berth doctor` (the shape of doctor.ts's DoctorCheck). */
export interface UpstreamProxyCheck {
  name: 'upstream proxy';
  ok: boolean;
  detail: string;
  fix?: string;
}

/** Whether a TCP connection to the proxy opens (nothing is sent; no name goes to it). */
function reachable(proxy: UpstreamProxy, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: proxy.host, port: proxy.port });
    const done = (problem: string | undefined) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(problem);
    };
    const timer = setTimeout(() => done('no answer in time'), timeoutMs);
    socket.once('connect', () => done(undefined));
    socket.once('error', (error: NodeJS.ErrnoException) => done(error.code ?? 'error'));
  });
}

/**
 * `berth doctor`'s line on the upstream proxy: which one the egress proxy goes out through (no
 * credentials shown) and whether it accepts a connection; `none` when the server has none.
 */
export async function upstreamProxyDoctorCheck(
  config: Pick<BerthConfig, 'upstreamProxy' | 'upstreamProxyProblem'>,
  timeoutMs = 3_000,
): Promise<UpstreamProxyCheck> {
  if (config.upstreamProxyProblem !== undefined)
    return {
      name: 'upstream proxy',
      ok: false,
      detail: config.upstreamProxyProblem,
      fix: 'give an http://[user:password@]host:port proxy in BERTH_UPSTREAM_PROXY (it wins over HTTPS_PROXY/HTTP_PROXY)',
    };
  const settings = config.upstreamProxy;
  const detail = describeUpstreamProxy(settings);
  if (settings === undefined) return { name: 'upstream proxy', ok: true, detail };
  const proxies = [settings.https, settings.http].filter(
    (p): p is UpstreamProxy => p !== undefined,
  );
  const problems: string[] = [];
  for (const proxy of new Set(proxies)) {
    const problem = await reachable(proxy, timeoutMs);
    if (problem !== undefined)
      problems.push(`${proxy.host}:${proxy.port} not reachable (${problem})`);
  }
  if (problems.length === 0)
    return {
      name: 'upstream proxy',
      ok: true,
      detail: `${detail}; setup and maintenance get it without credentials`,
    };
  return {
    name: 'upstream proxy',
    ok: false,
    detail: `${detail}; ${problems.join('; ')}`,
    fix: 'check BERTH_UPSTREAM_PROXY (or HTTPS_PROXY/HTTP_PROXY) in the server environment',
  };
}
