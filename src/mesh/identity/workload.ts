/**
 * The node proxy's side of workload identity, as ztunnel's certificate
 * manager (ztunnel src/identity/manager.rs) and istio-agent's secret manager
 * do it: the proxy makes each workload's key itself (ECDSA P-256), sends the
 * CA only a PKCS#10 request, keeps the key, and asks again at half the
 * certificate's life (SecretManager's rotation at a grace ratio of 0.5), so a
 * fresh certificate is in place long before the old one expires.
 */
import type { IssuedCertificate } from './ca.js';
import { formatSpiffeId, type SpiffeId } from './spiffe.js';
import { ecdsaP256, subtle, toPem, x509 } from './x509.js';

/** A workload's private key, and requests signed with it. */
export interface WorkloadKey {
  /** PKCS#8 PEM, as node:tls takes it. */
  privateKeyPem: string;
  /** A PEM PKCS#10 request for `identity` over this key (the CA decides the names it issues). */
  createCsr(identity: SpiffeId): Promise<string>;
}

/** An issued certificate with the key it certifies: what the proxy presents for a workload. */
export interface WorkloadCertificate extends IssuedCertificate {
  privateKeyPem: string;
}

/** A new ECDSA P-256 key for a workload. */
export async function generateWorkloadKey(): Promise<WorkloadKey> {
  const keys = await subtle.generateKey(
    { name: ecdsaP256.name, namedCurve: ecdsaP256.namedCurve },
    true,
    ['sign', 'verify'],
  );
  const privateKeyPem = toPem(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY');
  return {
    privateKeyPem,
    async createCsr(identity: SpiffeId): Promise<string> {
      // The request names the identity as istio-agent's does (a URI SAN in the
      // extension request); the CA ignores it and issues what it authorized.
      const csr = await x509.Pkcs10CertificateRequestGenerator.create({
        keys,
        signingAlgorithm: { name: ecdsaP256.name, hash: ecdsaP256.hash },
        extensions: [
          new x509.SubjectAlternativeNameExtension([
            { type: 'url', value: formatSpiffeId(identity) },
          ]),
        ],
      });
      return `${csr.toString('pem')}\n`;
    },
  };
}

/** Istio's SECRET_GRACE_PERIOD_RATIO: a certificate is renewed when this share of its life is left. */
export const rotationGraceRatio = 0.5;

/** When a certificate is due for rotation: half way from notBefore to notAfter. */
export function rotationAt(cert: Pick<IssuedCertificate, 'notBefore' | 'notAfter'>): Date {
  const lifetime = cert.notAfter.getTime() - cert.notBefore.getTime();
  return new Date(cert.notBefore.getTime() + lifetime * (1 - rotationGraceRatio));
}

/** Whether a certificate should be replaced at `now`: at or after half its life, as Istio rotates. */
export function rotationDue(
  cert: Pick<IssuedCertificate, 'notBefore' | 'notAfter'>,
  now: Date,
): boolean {
  return now.getTime() >= rotationAt(cert).getTime();
}
