/**
 * A minimal OpenAPI v3 description (/openapi/v3 and /openapi/v3/<group
 * version>): the operations of every resource, without schemas. It exists
 * so kubectl sees that the server validates objects itself: kubectl looks
 * for the `fieldValidation` parameter on each kind's PATCH operation
 * (cli-runtime's queryParamVerifierV3) and otherwise insists on validating
 * client-side against downloaded schemas, which strata does not publish.
 * The server always validates strictly (an unknown field is rejected), so it
 * answers every fieldValidation value that way.
 */
import { createHash } from 'node:crypto';
import { resources } from '../api/registry.js';
import type { ResourceType } from '../api/types.js';

/** `api/v1`, `apis/apps/v1`: a group version's key in the OpenAPI v3 discovery document. */
function groupVersionPath(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

function operation(r: ResourceType, action: string): unknown {
  return {
    'x-kubernetes-group-version-kind': { group: r.group, version: r.version, kind: r.kind },
    'x-kubernetes-action': action,
    parameters: [
      { name: 'fieldValidation', in: 'query', schema: { type: 'string', uniqueItems: true } },
    ],
    responses: { '200': { description: 'OK' } },
  };
}

function groupVersionDocument(group: string, version: string): unknown {
  const paths: Record<string, unknown> = {};
  for (const r of resources.filter((x) => x.group === group && x.version === version)) {
    const base = `/${groupVersionPath(group, version)}${r.namespaced ? '/namespaces/{namespace}' : ''}/${r.plural}`;
    paths[base] = { post: operation(r, 'post') };
    paths[`${base}/{name}`] = { put: operation(r, 'put'), patch: operation(r, 'patch') };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'strata', version: groupVersionPath(group, version) },
    paths,
  };
}

interface Documents {
  root: unknown;
  byPath: Map<string, unknown>;
}

let documents: Documents | undefined;

function build(): Documents {
  const byPath = new Map<string, unknown>();
  const rootPaths: Record<string, { serverRelativeURL: string }> = {};
  for (const r of resources) {
    const path = groupVersionPath(r.group, r.version);
    if (byPath.has(path)) continue;
    const document = groupVersionDocument(r.group, r.version);
    byPath.set(path, document);
    const hash = createHash('sha256').update(JSON.stringify(document)).digest('hex').slice(0, 32);
    rootPaths[path] = { serverRelativeURL: `/openapi/v3/${path}?hash=${hash}` };
  }
  return { root: { paths: rootPaths }, byPath };
}

/** /openapi/v3: where each group version's document is. */
export function openApiRoot(): unknown {
  documents ??= build();
  return documents.root;
}

/** /openapi/v3/<path>, or undefined for a group version not served. */
export function openApiDocument(path: string): unknown {
  documents ??= build();
  return documents.byPath.get(path);
}
