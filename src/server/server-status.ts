import { accessSync, constants } from 'node:fs';
import type { RuntimeStorage } from '../ports/sandbox-runtime.js';

/**
 * `GET /v1/server`: what `berth doctor` checks of the server it is logged in to. Any valid token
 * gets the version; the data directory and the engine's free disk are the operator's business,
 * so only an admin token gets them (others get null and `adminOnly: true`).
 */
export interface ServerStatus {
  version: string;
  adminOnly: boolean;
  dataDir: string | null;
  dataDirWritable: boolean | null;
  disk: { rootDir: string; freeMb: number | null; minFreeMb: number } | null;
}

export interface ServerStatusSource {
  version: string;
  dataDir: string;
  minFreeDiskMb: number;
  /** The engine's data directory and its free space (undefined: no engine here). */
  storage?: () => Promise<RuntimeStorage>;
}

export async function serverStatus(
  source: ServerStatusSource,
  admin: boolean,
): Promise<ServerStatus> {
  if (!admin)
    return {
      version: source.version,
      adminOnly: true,
      dataDir: null,
      dataDirWritable: null,
      disk: null,
    };
  let writable = true;
  try {
    accessSync(source.dataDir, constants.W_OK);
  } catch {
    writable = false;
  }
  const storage = await source.storage?.().catch(() => undefined);
  return {
    version: source.version,
    adminOnly: false,
    dataDir: source.dataDir,
    dataDirWritable: writable,
    disk:
      storage === undefined
        ? null
        : {
            rootDir: storage.rootDir,
            freeMb:
              storage.freeBytes === undefined ? null : Math.floor(storage.freeBytes / 1024 / 1024),
            minFreeMb: source.minFreeDiskMb,
          },
  };
}
