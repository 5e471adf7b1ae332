import type { BerthConfig } from '../config/config.js';
import type { Logger } from '../util/logger.js';
import { BerthError } from '../errors/berth-error.js';

export interface RunningServer {
  url: string;
  close(): Promise<void>;
  adminToken?: string;
}

/** Placeholder until the composition root lands (same signature). */
export function startServer(_config: BerthConfig, _logger: Logger): Promise<RunningServer> {
  return Promise.reject(new BerthError('internal', 'the server is not built yet'));
}
