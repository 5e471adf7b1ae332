import type { EnvironmentSpec } from './environment-spec.js';

/** A stored environment: its spec plus what the store keeps beside it. Never holds secret values. */
export interface Environment {
  id: string;
  spec: EnvironmentSpec;
  /** Names of the secrets set for this environment. */
  secretNames: string[];
  createdAt: string;
  updatedAt: string;
  /** Bumped on every change; part of what decides whether a cache entry is still valid. */
  revision: number;
}
