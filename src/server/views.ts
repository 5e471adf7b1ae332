import { maskRepositoryUrl } from '../domain/environment/repository-url.js';
import type { StoredEnvironment, Token } from '../ports/store.js';
import type { CreatedToken, EnvironmentView, TokenView } from './api-schemas.js';

/**
 * What the API shows of stored things: never a secret value, a token's value or its hash. An
 * environment's `spec.members` shows its members as bound (live tokens), not the names as once
 * written, so a revoked member is not listed and a new token with its name does not seem to be.
 */
export const views = {
  environment(environment: StoredEnvironment): EnvironmentView {
    return {
      id: environment.id,
      name: environment.spec.name,
      spec: {
        ...environment.spec,
        // Credentials in a URL stored before they were refused are never shown.
        repository: {
          ...environment.spec.repository,
          url: maskRepositoryUrl(environment.spec.repository.url),
        },
        members: environment.members.map((member) => member.name),
      },
      secrets: environment.secretNames,
      createdAt: environment.createdAt,
      updatedAt: environment.updatedAt,
      revision: environment.revision,
    };
  },
  token(token: Token): TokenView {
    return {
      id: token.id,
      name: token.name,
      admin: token.admin,
      createdAt: token.createdAt,
      lastUsedAt: token.lastUsedAt,
      revokedAt: token.revokedAt,
    };
  },
  createdToken(token: Token, value: string): CreatedToken {
    return {
      id: token.id,
      name: token.name,
      admin: token.admin,
      createdAt: token.createdAt,
      token: value,
    };
  },
};
