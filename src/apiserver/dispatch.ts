/**
 * One request: its route and method to a handler, and any failure to a
 * Status response. Verbs per route, as kube-apiserver registers them:
 *
 *   collection  GET (list, or watch with ?watch=1), POST (create; not on a
 *               namespaced kind listed across namespaces)
 *   object      GET (or watch), PUT, PATCH, DELETE
 *   /status     GET, PUT, PATCH
 *   pods/<name>/binding  POST (binding.ts)
 *   discovery, /openapi/v3, health, /version: GET
 *
 * Anything else on a known path is 405 MethodNotAllowed. A write with
 * ?dryRun is refused (400): strata cannot yet run a write without making it.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { handleBinding } from './binding.js';
import type { ApiContext } from './context.js';
import { handleCreate } from './create.js';
import { handleDelete, readDeleteOptions } from './delete.js';
import {
  apiGroupDocument,
  apiGroupList,
  apiResourceList,
  apiVersions,
  versionInfo,
} from './discovery.js';
import { handleGet, handleList } from './get.js';
import { openApiDocument, openApiRoot } from './openapi.js';
import { handlePatch } from './patch.js';
import { readJsonBody } from './request-body.js';
import { sendJson, sendStatus, sendText } from './response.js';
import { type Route, parseRoute } from './routes.js';
import {
  ApiStatusError,
  badRequest,
  internalError,
  methodNotAllowed,
  pathNotFound,
} from './status.js';
import { handleUpdate } from './update.js';
import { handleWatch, wantsWatch } from './watch.js';

type Reply = { code: number; body: unknown } | 'streamed';

async function route(
  ctx: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
  target: Route,
  query: URLSearchParams,
): Promise<Reply> {
  const method = req.method ?? 'GET';
  if (method !== 'GET' && query.has('dryRun')) {
    // Refused rather than ignored: ignoring it would make a dry run write.
    throw badRequest('dryRun is not supported by this server');
  }
  const get = (body: () => unknown): Reply => {
    if (method !== 'GET') throw methodNotAllowed();
    return { code: 200, body: body() };
  };
  switch (target.type) {
    case 'notFound':
      throw pathNotFound();
    case 'badRequest':
      throw badRequest(target.message);
    case 'health':
      if (method !== 'GET') throw methodNotAllowed();
      sendText(res, 200, 'ok');
      return 'streamed';
    case 'version':
      return get(versionInfo);
    case 'apiVersions':
      return get(() => apiVersions(req.headers.host ?? 'localhost'));
    case 'apiGroups':
      return get(apiGroupList);
    case 'apiGroup':
      return get(() => apiGroupDocument(target.group));
    case 'apiResources':
      return get(() => apiResourceList(target.group, target.version));
    case 'openapi': {
      const document = target.path === undefined ? openApiRoot() : openApiDocument(target.path);
      if (document === undefined) throw pathNotFound();
      return get(() => document);
    }
    case 'collection': {
      const { resource, namespace } = target;
      const allNamespaces = resource.namespaced && namespace === undefined;
      if (method === 'GET') {
        if (target.watchPath || wantsWatch(query)) {
          await handleWatch(ctx, res, { resource, namespace }, query);
          return 'streamed';
        }
        return { code: 200, body: await handleList(ctx, resource, namespace, query) };
      }
      if (method === 'POST' && !target.watchPath && !allNamespaces) {
        return {
          code: 201,
          body: await handleCreate(ctx, resource, namespace, await readJsonBody(req)),
        };
      }
      throw methodNotAllowed();
    }
    case 'object': {
      const { resource, namespace, name, subresource } = target;
      if (subresource === 'binding') {
        if (method !== 'POST') throw methodNotAllowed();
        return {
          code: 201,
          body: await handleBinding(ctx, resource, namespace, name, await readJsonBody(req)),
        };
      }
      const objectTarget = { resource, namespace, name, subresource };
      if (method === 'GET') {
        if (target.watchPath || wantsWatch(query)) {
          await handleWatch(ctx, res, { resource, namespace, name }, query);
          return 'streamed';
        }
        return { code: 200, body: await handleGet(ctx, resource, namespace, name) };
      }
      if (target.watchPath) throw methodNotAllowed();
      switch (method) {
        case 'PUT':
          return {
            code: 200,
            body: await handleUpdate(ctx, objectTarget, await readJsonBody(req)),
          };
        case 'PATCH':
          return { code: 200, body: await handlePatch(ctx, objectTarget, req) };
        case 'DELETE':
          if (subresource) throw methodNotAllowed();
          return {
            code: 200,
            body: await handleDelete(
              ctx,
              resource,
              namespace,
              name,
              await readDeleteOptions(req, query),
            ),
          };
        default:
          throw methodNotAllowed();
      }
    }
  }
}

/** Serves one request; never rejects. */
export async function dispatch(
  ctx: ApiContext,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  try {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reply = await route(ctx, req, res, parseRoute(url.pathname), url.searchParams);
    if (reply !== 'streamed') sendJson(res, reply.code, reply.body);
  } catch (error) {
    const failure =
      error instanceof ApiStatusError ? error : internalError((error as Error).message);
    if (!res.headersSent) {
      sendStatus(res, failure);
    } else {
      res.destroy(failure);
    }
    // Unread request bodies would otherwise hold the connection.
    if (!req.readableEnded) req.resume();
  }
}
