/**
 * Threat model. Method limits on HTTPS need the proxy to read requests inside TLS, so each
 * environment gets its own certificate authority that its sandboxes trust. Whoever holds the CA
 * key can impersonate any site to those sandboxes, so the key lives only in the orchestrator
 * (exported as PEM for the store, never written into a sandbox; the sandbox receives the
 * certificate only). One CA per environment bounds the damage of a leak to that environment's
 * sandboxes. Leaf certificates are minted only for a host the policy already allowed (the proxy
 * calls `leafFor` after the check), carry exactly that one DNS name, are short-lived and are
 * cached per host.
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { randomBytes, webcrypto } from 'node:crypto';
import { normaliseHostName } from '../domain/internet/host-name.js';
import { BerthError } from '../errors/berth-error.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;
const LEAF_VALIDITY_MS = 7 * DAY_MS;
const LEAF_RENEW_BEFORE_MS = DAY_MS;
const LEAF_CACHE_MAX = 2000;

export interface CertificateAuthorityPem {
  certificatePem: string;
  privateKeyPem: string;
}

export interface LeafCertificate {
  host: string;
  certificatePem: string;
  privateKeyPem: string;
  notAfter: Date;
}

export interface CreateCertificateAuthorityOptions {
  /** Shown in the certificate's subject, for example the environment id. */
  commonName: string;
  validityDays?: number;
}

function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0] ?? 0) & 0x7f; // positive
  return bytes.toString('hex');
}

function keyPem(der: ArrayBuffer): string {
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

export class CertificateAuthority {
  private readonly certificate: x509.X509Certificate;
  private readonly privateKey: CryptoKey;
  private readonly privateKeyPem: string;
  private leafKeys: Promise<{ keys: CryptoKeyPair; pem: string }> | undefined;
  private readonly leaves = new Map<string, Promise<LeafCertificate>>();

  private constructor(
    certificate: x509.X509Certificate,
    privateKey: CryptoKey,
    privateKeyPem: string,
  ) {
    this.certificate = certificate;
    this.privateKey = privateKey;
    this.privateKeyPem = privateKeyPem;
  }

  static async create(options: CreateCertificateAuthorityOptions): Promise<CertificateAuthority> {
    const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
    const now = Date.now();
    const name = `CN=${options.commonName.replace(/[,=+<>#;"\\]/g, '_')}, O=Berth egress proxy`;
    const certificate = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serialNumber(),
      name,
      notBefore: new Date(now - HOUR_MS),
      notAfter: new Date(now + (options.validityDays ?? 5 * 365) * DAY_MS),
      signingAlgorithm: ALGORITHM,
      keys,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.keyCertSign |
            x509.KeyUsageFlags.cRLSign |
            x509.KeyUsageFlags.digitalSignature,
          true,
        ),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return new CertificateAuthority(certificate, keys.privateKey, keyPem(pkcs8));
  }

  static async fromPem(pem: CertificateAuthorityPem): Promise<CertificateAuthority> {
    try {
      const certificate = new x509.X509Certificate(pem.certificatePem);
      const der = x509.PemConverter.decodeFirst(pem.privateKeyPem);
      const privateKey = await webcrypto.subtle.importKey('pkcs8', der, ALGORITHM, true, ['sign']);
      // Refuse a key that does not belong to the certificate: sign and verify one message.
      const probe = randomBytes(32);
      const signature = await webcrypto.subtle.sign(ALGORITHM, privateKey, probe);
      const publicKey = (await certificate.publicKey.export(ALGORITHM, [
        'verify',
      ])) as unknown as CryptoKey;
      if (!(await webcrypto.subtle.verify(ALGORITHM, publicKey, signature, probe))) {
        throw new Error('the private key does not match the certificate');
      }
      return new CertificateAuthority(certificate, privateKey, pem.privateKeyPem);
    } catch (error) {
      throw new BerthError(
        'invalid_input',
        'not a usable egress CA (certificate and ECDSA P-256 key in PEM)',
        {},
        { cause: error },
      );
    }
  }

  /** The CA certificate, for the sandbox's trust store. */
  get certificatePem(): string {
    return this.certificate.toString('pem');
  }

  /** Certificate and key, for the orchestrator's store only. Never hand this to a sandbox. */
  toPem(): CertificateAuthorityPem {
    return { certificatePem: this.certificatePem, privateKeyPem: this.privateKeyPem };
  }

  /** A certificate for exactly one host name, cached until a day before it expires. */
  leafFor(host: string): Promise<LeafCertificate> {
    const name = normaliseHostName(host);
    if (!name.ok || name.name !== host) {
      return Promise.reject(
        new BerthError('invalid_input', 'a leaf certificate needs a normalised host name', {
          host,
        }),
      );
    }
    const cached = this.leaves.get(host);
    if (cached !== undefined) return this.renewIfOld(host, cached);
    return this.mint(host);
  }

  private async renewIfOld(
    host: string,
    cached: Promise<LeafCertificate>,
  ): Promise<LeafCertificate> {
    const leaf = await cached;
    if (leaf.notAfter.getTime() - Date.now() > LEAF_RENEW_BEFORE_MS) return leaf;
    if (this.leaves.get(host) === cached) this.leaves.delete(host);
    return this.mint(host);
  }

  private mint(host: string): Promise<LeafCertificate> {
    if (this.leaves.size >= LEAF_CACHE_MAX) {
      const oldest = this.leaves.keys().next();
      if (oldest.done !== true) this.leaves.delete(oldest.value);
    }
    const pending = this.createLeaf(host);
    this.leaves.set(host, pending);
    pending.catch(() => {
      if (this.leaves.get(host) === pending) this.leaves.delete(host);
    });
    return pending;
  }

  private async createLeaf(host: string): Promise<LeafCertificate> {
    // One key pair per CA instance for all its leaves: the CA key is what matters, and a new
    // key per host would make the first connection to each host slower for no gain.
    this.leafKeys ??= (async () => {
      const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
      return { keys, pem: keyPem(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey)) };
    })();
    const { keys, pem } = await this.leafKeys;
    const now = Date.now();
    const notAfter = new Date(
      Math.min(now + LEAF_VALIDITY_MS, this.certificate.notAfter.getTime()),
    );
    const certificate = await x509.X509CertificateGenerator.create({
      serialNumber: serialNumber(),
      subject: `CN=${host}`,
      issuer: this.certificate.subject,
      notBefore: new Date(now - HOUR_MS),
      notAfter,
      signingAlgorithm: ALGORITHM,
      publicKey: keys.publicKey,
      signingKey: this.privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: host }]),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(this.certificate),
      ],
    });
    return { host, certificatePem: certificate.toString('pem'), privateKeyPem: pem, notAfter };
  }
}
