import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type BerthConfig } from '../../src/config/config.js';
import { createLogger } from '../../src/util/logger.js';
import { startServer } from '../../src/server/main.js';

/** A real Berth server on 127.0.0.1, port 0, with a fresh data directory, for API tests. */

export interface ApiResponse {
  status: number;
  headers: Headers;
  text: string;
  // The parsed body, or undefined for an empty one.
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface TestServer {
  url: string;
  adminToken: string;
  dataDir: string;
  config: BerthConfig;
  /** Every log line the server wrote (pino JSON). */
  logs: string[];
  request(
    method: string,
    path: string,
    options?: {
      token?: string | null;
      body?: unknown;
      rawBody?: string | Uint8Array;
      headers?: Record<string, string>;
    },
  ): Promise<ApiResponse>;
  /** Creates a token through the API, returning its value. */
  createToken(name: string, admin?: boolean): Promise<string>;
  stop(): Promise<void>;
  /** Stops the server and removes the data directory. */
  close(): Promise<void>;
}

export async function startTestServer(
  options: {
    allowLocalRepositories?: boolean;
    dataDir?: string;
    /** The port to listen on (default 0: any free one), e.g. a restart on the same address. */
    port?: number;
    logLevel?: string;
    /** More configuration variables (`BERTH_MAX_ATTEMPTS`, …). */
    env?: Record<string, string>;
  } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'berth-api-'));
  const config = loadConfig(
    {
      dataDir,
      host: '127.0.0.1',
      port: options.port ?? 0,
      allowLocalRepositories: options.allowLocalRepositories ?? false,
      logLevel: options.logLevel ?? 'info',
    },
    { HOME: dataDir, BERTH_EXTRA_CA_FILES: '', ...options.env },
  );
  const logs: string[] = [];
  const logger = createLogger(config.logLevel, { write: (line: string) => void logs.push(line) });
  const server = await startServer(config, logger);
  if (server.adminToken === undefined && options.dataDir === undefined)
    throw new Error('no admin token on first start');
  const adminToken = server.adminToken ?? '';

  const request: TestServer['request'] = async (method, path, opts = {}) => {
    const token = opts.token === undefined ? adminToken : opts.token;
    const headers: Record<string, string> = { ...(opts.headers ?? {}) };
    if (token !== null) headers.authorization = `Bearer ${token}`;
    let body: string | Uint8Array | undefined;
    if (opts.rawBody !== undefined) body = opts.rawBody;
    else if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    const response = await fetch(server.url + path, {
      method,
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    const text = await response.text();
    let json: unknown;
    try {
      json = text === '' ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: response.status, headers: response.headers, text, json };
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await server.close();
  };
  return {
    url: server.url,
    adminToken,
    dataDir,
    config,
    logs,
    request,
    async createToken(name, admin = false) {
      const response = await request('POST', '/v1/tokens', { body: { name, admin } });
      if (response.status !== 201) throw new Error(`token ${name}: ${response.text}`);
      return (response.json as { token: string }).token;
    },
    stop,
    async close() {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
