import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CertificateAuthority } from '../../src/egress/certificate-authority.js';

describe('CertificateAuthority', () => {
  it('creates an ECDSA P-256 CA and leaves that chain to it, for exactly one name', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'env_abc' });
    const caCert = new X509Certificate(ca.certificatePem);
    expect(caCert.ca).toBe(true);
    expect(caCert.subject).toContain('CN=env_abc');
    expect(caCert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const leaf = await ca.leafFor('registry.example');
    const leafCert = new X509Certificate(leaf.certificatePem);
    expect(leafCert.ca).toBe(false);
    expect(leafCert.subjectAltName).toBe('DNS:registry.example');
    expect(leafCert.checkIssued(caCert)).toBe(true);
    expect(leafCert.verify(caCert.publicKey)).toBe(true);
    expect(leafCert.checkHost('registry.example')).toBe('registry.example');
    expect(leafCert.checkHost('evil.example')).toBeUndefined();
    expect(leafCert.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
  });

  it('caches leaves per host and refuses names that are not normalised', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'env_cache' });
    const [a, b] = await Promise.all([ca.leafFor('a.example'), ca.leafFor('a.example')]);
    expect(a).toBe(b);
    expect((await ca.leafFor('b.example')).certificatePem).not.toBe(a.certificatePem);
    await expect(ca.leafFor('A.example')).rejects.toThrow(/normalised/);
    await expect(ca.leafFor('127.0.0.1')).rejects.toThrow();
    await expect(ca.leafFor('*.example')).rejects.toThrow();
  });

  it('round-trips through PEM and refuses a key that does not match', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'env_pem' });
    const pem = ca.toPem();
    expect(pem.privateKeyPem).toContain('BEGIN PRIVATE KEY');
    const again = await CertificateAuthority.fromPem(pem);
    expect(again.certificatePem).toBe(ca.certificatePem);
    const leaf = new X509Certificate((await again.leafFor('x.example')).certificatePem);
    expect(leaf.verify(new X509Certificate(ca.certificatePem).publicKey)).toBe(true);
    const other = await CertificateAuthority.create({ commonName: 'other' });
    await expect(
      CertificateAuthority.fromPem({
        certificatePem: pem.certificatePem,
        privateKeyPem: other.toPem().privateKeyPem,
      }),
    ).rejects.toThrow(/not a usable egress CA/);
    await expect(
      CertificateAuthority.fromPem({ certificatePem: 'nope', privateKeyPem: 'nope' }),
    ).rejects.toThrow();
  });

  it('the certificate handed to sandboxes carries no private key', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'env_public' });
    expect(ca.certificatePem).not.toContain('PRIVATE KEY');
  });
});
