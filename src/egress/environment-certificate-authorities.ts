/**
 * Threat model. Each environment has one egress CA (DESIGN §4, issue 5 item 5): its sandboxes
 * trust it, so whoever holds its key can impersonate any site to them. The key therefore lives
 * only in the orchestrator: in memory while in use, and in the store sealed with the SecretBox
 * (AES-256-GCM; the environment id is bound in as authenticated data, so a sealed key copied to
 * another environment's row does not open). Someone who reads the database without the secret
 * key learns the certificate (public) and nothing else. The certificate alone goes into sandboxes.
 *
 * One CA per environment, not per attempt, so a sandbox's trust is the same for every attempt and
 * follow-up of that environment (and can be installed once), and a leaked key is bounded to that
 * environment. Lifetime decisions (docs/internet.md, "The environment's CA"):
 * - created on the first lockdown that needs it (policy `allowlist` or `on`), then reused,
 *   also after a restart and by every orchestrator sharing the store (the first write wins);
 * - kept when the environment's internet policy changes (the CA is the environment's, not the
 *   policy's; a policy back to `off` simply stops using it);
 * - deleted with the environment (same store transaction); an environment created again under
 *   the same name has a new id and gets a new CA.
 */
import type { StoredEgressCa } from '../ports/store.js';
import type { SecretBox } from '../secrets/secret-box.js';
import { CertificateAuthority } from './certificate-authority.js';

/** The part of the store this needs. */
export interface EgressCaStore {
  getEgressCa(environmentId: string): Promise<StoredEgressCa | undefined>;
  putEgressCaIfAbsent(ca: StoredEgressCa): Promise<StoredEgressCa>;
}

/** What the egress enforcer asks for: the CA of one environment. */
export interface CertificateAuthoritySource {
  forEnvironment(environmentId: string): Promise<CertificateAuthority>;
}

/** The SecretBox "name" the key is sealed under; not a valid secret name, so never confused with one. */
const SEALED_KEY_NAME = 'berth:egress-ca-private-key';

export interface EnvironmentCertificateAuthoritiesOptions {
  /** Where the CAs are kept. Without it they live in this process only (lost on restart). */
  store?: EgressCaStore | undefined;
  /** Seals the private keys at rest; required with a store. */
  box?: SecretBox | undefined;
  now?: () => Date;
}

export class EnvironmentCertificateAuthorities implements CertificateAuthoritySource {
  private readonly loaded = new Map<string, Promise<CertificateAuthority>>();
  private readonly store: EgressCaStore | undefined;
  private readonly box: SecretBox | undefined;
  private readonly now: () => Date;

  constructor(options: EnvironmentCertificateAuthoritiesOptions = {}) {
    if (options.store !== undefined && options.box === undefined)
      throw new Error('EnvironmentCertificateAuthorities: a store needs a SecretBox');
    this.store = options.store;
    this.box = options.box;
    this.now = options.now ?? (() => new Date());
  }

  /** The environment's CA: from memory, else from the store, else made and stored. */
  forEnvironment(environmentId: string): Promise<CertificateAuthority> {
    const cached = this.loaded.get(environmentId);
    if (cached !== undefined) return cached;
    const loading = this.load(environmentId);
    this.loaded.set(environmentId, loading);
    // A failed load (store down) is not remembered; the next attempt tries again.
    loading.catch(() => {
      if (this.loaded.get(environmentId) === loading) this.loaded.delete(environmentId);
    });
    return loading;
  }

  /** Drops an environment's CA from memory (it was deleted). */
  forget(environmentId: string): void {
    this.loaded.delete(environmentId);
  }

  private async load(environmentId: string): Promise<CertificateAuthority> {
    const { store, box } = this;
    if (store === undefined || box === undefined) return this.create(environmentId);
    const stored = await store.getEgressCa(environmentId);
    if (stored !== undefined) return this.open(stored, box);
    const ca = await this.create(environmentId);
    const pem = ca.toPem();
    const kept = await store.putEgressCaIfAbsent({
      environmentId,
      certificatePem: pem.certificatePem,
      sealedPrivateKey: box.seal(environmentId, SEALED_KEY_NAME, pem.privateKeyPem),
      createdAt: this.now().toISOString(),
    });
    // Another orchestrator stored one first: use that one, so every sandbox trusts the same CA.
    return kept.certificatePem === pem.certificatePem ? ca : this.open(kept, box);
  }

  private create(environmentId: string): Promise<CertificateAuthority> {
    return CertificateAuthority.create({ commonName: `Berth egress ${environmentId}` });
  }

  private open(stored: StoredEgressCa, box: SecretBox): Promise<CertificateAuthority> {
    return CertificateAuthority.fromPem({
      certificatePem: stored.certificatePem,
      privateKeyPem: box.open(stored.environmentId, SEALED_KEY_NAME, stored.sealedPrivateKey),
    });
  }
}
