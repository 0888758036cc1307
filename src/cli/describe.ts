/**
 * `strata describe KIND [NAME...]` (or `KIND/NAME`): kubectl describe's
 * layout (k8s.io/kubectl/pkg/describe), written as it writes it: fields
 * separated by tabs and aligned by a tabwriter (minwidth 0, padding 2).
 * The kinds kubectl has a describer for get their sections
 * (describe-kinds.ts); every other kind gets the generic one.
 */
import { parseArgs } from 'node:util';
import type { KubeObject, ResourceType } from '../api/types.js';
import { type ApiClient, ApiError } from '../client/index.js';
import {
  namespaceFor,
  namespaceOption,
  objectArgs,
  parseCommandLine,
  targetOptions,
} from './args.js';
import { connect, serverError } from './connect.js';
import { describers } from './describe-kinds.js';
import { DescribeText, describeFields, describeMetadata } from './describe-text.js';
import type { Io } from './io.js';

/** Kinds without a describer of their own: metadata, then spec and status as field trees. */
function describeGeneric(d: DescribeText, resource: ResourceType, object: KubeObject): void {
  describeMetadata(d, object, resource.namespaced);
  d.line(0, 'API Version:', object.apiVersion);
  d.line(0, 'Kind:', object.kind);
  for (const [key, value] of Object.entries(object)) {
    if (['apiVersion', 'kind', 'metadata'].includes(key)) continue;
    d.line(0, `${key.charAt(0).toUpperCase()}${key.slice(1)}:`);
    describeFields(d, 1, value);
  }
  d.line(0, 'Events:', '<none>');
}

/** One object's description. */
export async function describeObject(
  client: ApiClient,
  resource: ResourceType,
  object: KubeObject,
): Promise<string> {
  const d = new DescribeText();
  const describer = describers[`${resource.group}/${resource.kind}`];
  if (describer) await describer(d, object, client);
  else describeGeneric(d, resource, object);
  return d.toString();
}

export async function describeCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('describe', () =>
    parseArgs({
      args: [...argv],
      options: { ...targetOptions, ...namespaceOption },
      allowPositionals: true,
      strict: true,
    }),
  );
  const parsed = objectArgs('describe', positionals);
  const { client } = connect(values);
  let failures = 0;
  const texts: string[] = [];
  try {
    const refs =
      'refs' in parsed
        ? parsed.refs
        : parsed.names.map((name) => ({ resource: parsed.resource, name }));
    const objects: { resource: ResourceType; object: KubeObject }[] = [];
    if (!('refs' in parsed) && parsed.names.length === 0) {
      const { resource } = parsed;
      const namespace = namespaceFor(resource, undefined, values.namespace);
      const list = await client.list(resource, { namespace });
      for (const object of list.items) objects.push({ resource, object });
      if (objects.length === 0) {
        io.out.write(
          resource.namespaced
            ? `No resources found in ${namespace ?? 'default'} namespace.\n`
            : 'No resources found\n',
        );
      }
    }
    for (const { resource, name } of refs) {
      try {
        const namespace = namespaceFor(resource, undefined, values.namespace);
        objects.push({ resource, object: await client.get(resource, name, { namespace }) });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        io.err.write(`${serverError(error)}\n`);
        failures++;
      }
    }
    for (const { resource, object } of objects) {
      texts.push(await describeObject(client, resource, object));
    }
  } finally {
    client.close();
  }
  io.out.write(texts.join('\n\n'));
  return failures > 0 ? 1 : 0;
}
