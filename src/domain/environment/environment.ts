import type { EnvironmentSpec } from './environment-spec.js';

/**
 * Where `spec.repository.defaultBranch` came from: `named` in the environment as written, `found`
 * on the remote (its HEAD), or `assumed` (`main`: the remote was not asked or did not answer when
 * the environment was written; an attempt asks it again before its cache key).
 */
export type DefaultBranchOrigin = 'named' | 'found' | 'assumed';

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
  /** Where the default branch came from. */
  defaultBranchOrigin: DefaultBranchOrigin;
}
