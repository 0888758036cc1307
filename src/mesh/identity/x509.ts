/**
 * The one module that loads @peculiar/x509, the X.509 library mesh identity
 * issues certificates and certificate requests with (Node's crypto can parse
 * and verify certificates but not make them). Everything else imports `x509`
 * from here, never from the package, because the package's dependency
 * tsyringe needs the reflect-metadata polyfill evaluated before it loads, and
 * the library needs a WebCrypto provider: Node's own.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

export { x509 };

/** WebCrypto, as the library uses it. */
export const subtle = webcrypto.subtle;
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

/** ECDSA P-256 with SHA-256: workload keys and the self-signed root's key. */
export const ecdsaP256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** PEM text of DER bytes under a label (RFC 7468): base64 in lines of 64. */
export function toPem(der: ArrayBuffer | Uint8Array, label: string): string {
  const base64 = Buffer.from(der instanceof Uint8Array ? der : new Uint8Array(der)).toString(
    'base64',
  );
  const lines = base64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}
