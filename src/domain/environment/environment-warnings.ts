import type { EnvironmentSpec } from './environment-spec.js';
import { allowlistWarnings, type SpecWarning } from '../internet/allowlist-lint.js';

export type { SpecWarning };

/**
 * What an environment's schema accepts but a person should look at before relying on it, with
 * the field path as refusals give it. Printed by `berth env validate`/`create`/`update`, and
 * carried by the API's answers to the same (`warnings`).
 */
export function environmentWarnings(spec: EnvironmentSpec): SpecWarning[] {
  return allowlistWarnings(spec.internet);
}
