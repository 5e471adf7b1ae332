import { describe, expect, it } from 'vitest';
import { describeEnvironment } from '../../src/cli/environment-description.js';
import { parseEnvironmentFile } from '../../src/domain/environment/environment-file.js';

describe('berth env show: internet credentials, rules and budget', () => {
  it('names the credential by header, host and secret (never a value), the rules and the budget', () => {
    const spec = parseEnvironmentFile(`name: api
repository: https://git.example.test/acme/api.git
secrets: [API_TOKEN]
internet:
  access: allowlist
  domains: [api.example.test]
  credentials: [{ host: api.example.test, header: Authorization, secret: API_TOKEN, format: "Bearer {value}" }]
  rules: [{ host: api.example.test, methods: [GET], paths: ["/v1/*"] }]
  budget: { requests: 100, bytesIn: 2GB }
`);
    const text = describeEnvironment({
      id: 'env_1',
      name: 'api',
      spec,
      secrets: ['API_TOKEN'],
      revision: 1,
    });
    expect(text).toContain(
      'internet:    allowlist (api.example.test), Authorization for api.example.test set by the proxy from secret API_TOKEN, rule api.example.test GET /v1/*, budget per attempt requests 100, bytesIn 2GB',
    );
  });
});
