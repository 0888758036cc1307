/** Reading request bodies: size limit, media type, JSON (400 BadRequest when malformed). */
import type { IncomingMessage } from 'node:http';
import { badRequest, requestEntityTooLarge, unsupportedMediaType } from './status.js';

/** kube-apiserver's limit on a JSON request body (3 MiB). */
export const maxBodyBytes = 3 * 1024 * 1024;

/** The media type without parameters: `application/json; charset=utf-8` → `application/json`. */
export function mediaType(req: IncomingMessage): string {
  return (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

export async function readBody(req: IncomingMessage, limit = maxBodyBytes): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw requestEntityTooLarge(limit);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw badRequest(`the request body is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * The JSON body of a create or update. The media type must be JSON; a body
 * without a Content-Type is read as JSON too, for hand-written requests.
 */
export async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const type = mediaType(req);
  if (type !== '' && type !== 'application/json') {
    throw unsupportedMediaType(type, ['application/json']);
  }
  const text = await readBody(req);
  if (text.trim() === '') throw badRequest('the request body is empty: an object is required');
  return parseJson(text);
}
