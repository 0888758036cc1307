/**
 * Short stable hashes of API values, as upstream names things after them:
 * a Deployment's `pod-template-hash` (controller.ComputeHash: FNV-1a 32 of
 * the template, its decimal digits mapped by rand.SafeEncodeString), and the
 * suffix of an EndpointSlice named after its ports.
 */

/** rand.SafeEncodeString's alphabet: no vowels (so no words) and no look-alike characters. */
const safeAlphabet = 'bcdfghjklmnpqrstvwxz2456789';

/** rand.SafeEncodeString: each character becomes a letter of the safe alphabet. */
export function safeEncode(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    out += safeAlphabet.charAt(text.charCodeAt(i) % safeAlphabet.length);
  }
  return out;
}

/** FNV-1a, 32 bits, over the UTF-8 bytes of the text. */
export function fnv1a32(text: string): number {
  let hash = 0x811c9dc5;
  for (const byte of Buffer.from(text, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash >>> 0;
}

/** JSON with object keys sorted at every level: equal values, equal text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** A hash of the value in the safe alphabet (up to 10 characters), as ComputeHash makes one. */
export function objectHash(value: unknown): string {
  return safeEncode(String(fnv1a32(canonicalJson(value))));
}
