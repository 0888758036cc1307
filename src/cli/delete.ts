/**
 * `strata delete -f FILE|DIR|-`, `strata delete KIND NAME...` (or
 * `KIND/NAME...`) and `strata delete KIND --all`, with kubectl's output:
 * `deployment.apps "web" deleted`. Pods are deleted gracefully (their node
 * stops them first); `--wait` waits until every object is gone.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { type ApiClient, ApiError, isNotFound } from '../client/index.js';
import { loadSources } from './apply.js';
import {
  CommandError,
  type ObjectRef,
  UsageError,
  namespaceFor,
  namespaceOption,
  objectArgs,
  parseCommandLine,
  targetOptions,
} from './args.js';
import { connect, serverError } from './connect.js';
import type { Io } from './io.js';
import { qualifiedKind } from './printers.js';

/** `deployment.apps`, `pod`: how kubectl names a kind in messages. */
export function kindName(resource: ResourceType): string {
  return qualifiedKind(resource.kind, resource.group);
}

interface Target extends ObjectRef {
  namespace: string | undefined;
  /** The manifest the object came from, for error messages. */
  file?: string;
}

function fromManifests(
  sources: readonly string[],
  io: Io,
  recursive: boolean,
  namespaceFlag: string | undefined,
): Target[] {
  return loadSources(sources, io, recursive).map((manifest) => {
    const where = `${manifest.file} document ${manifest.document}`;
    if (manifest.syntaxError) {
      throw new CommandError(`${where}: ${manifest.syntaxError.message}`);
    }
    const object = manifest.object as Partial<KubeObject> | null;
    const resource =
      typeof object?.apiVersion === 'string' && typeof object.kind === 'string'
        ? resourceForKind(object.apiVersion, object.kind)
        : undefined;
    const name = object?.metadata?.name;
    if (!resource || typeof name !== 'string' || name === '') {
      throw new CommandError(`${where}: not an object of a kind strata serves, with a name`);
    }
    const namespace = namespaceFor(resource, object?.metadata?.namespace, namespaceFlag);
    return { resource, name, namespace, file: manifest.file };
  });
}

async function waitUntilGone(client: ApiClient, targets: readonly Target[]): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (const target of targets) {
    for (;;) {
      try {
        await client.get(target.resource, target.name, { namespace: target.namespace });
      } catch (error) {
        if (isNotFound(error)) break;
        throw error;
      }
      if (Date.now() > deadline) {
        throw new Error(
          `timed out waiting for ${kindName(target.resource)} "${target.name}" to be deleted`,
        );
      }
      await sleep(250);
    }
  }
}

export async function deleteCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('delete', () =>
    parseArgs({
      args: [...argv],
      options: {
        ...targetOptions,
        ...namespaceOption,
        filename: { type: 'string', short: 'f', multiple: true },
        recursive: { type: 'boolean', short: 'R' },
        all: { type: 'boolean' },
        'ignore-not-found': { type: 'boolean' },
        wait: { type: 'boolean' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const sources = values.filename ?? [];
  if (sources.length > 0 && positionals.length > 0) {
    throw new UsageError('strata delete: give either -f FILE or KIND NAME, not both');
  }
  if (sources.length === 0 && positionals.length === 0) {
    throw new UsageError('strata delete: give -f FILE, or KIND NAME, or KIND --all');
  }
  let targets: Target[] | undefined;
  let all: ResourceType | undefined;
  if (sources.length > 0) {
    targets = fromManifests(sources, io, values.recursive ?? false, values.namespace);
  } else {
    const parsed = objectArgs('delete', positionals);
    if ('refs' in parsed) {
      targets = parsed.refs.map((ref) => ({
        ...ref,
        namespace: namespaceFor(ref.resource, undefined, values.namespace),
      }));
    } else if (values.all) {
      all = parsed.resource;
    } else if (parsed.names.length === 0) {
      throw new UsageError(
        `strata delete: name the ${parsed.resource.plural} to delete, or pass --all`,
      );
    } else {
      targets = parsed.names.map((name) => ({
        resource: parsed.resource,
        name,
        namespace: namespaceFor(parsed.resource, undefined, values.namespace),
      }));
    }
  }

  const { client } = connect(values);
  let failures = 0;
  try {
    if (all) {
      const namespace = namespaceFor(all, undefined, values.namespace);
      const list = await client.list(all, { namespace });
      targets = list.items.map((item) => ({
        resource: all,
        name: item.metadata.name ?? '',
        namespace,
      }));
      if (targets.length === 0) io.out.write('No resources found\n');
    }
    const deleted: Target[] = [];
    // Deleting a namespace deletes what is in it: those objects of the list are deleted already.
    const goneNamespaces = new Set<string>();
    for (const target of targets ?? []) {
      try {
        await client.delete(target.resource, target.name, { namespace: target.namespace });
        io.out.write(`${kindName(target.resource)} "${target.name}" deleted\n`);
        deleted.push(target);
        if (target.resource.kind === 'Namespace') goneNamespaces.add(target.name);
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        if (isNotFound(error) && goneNamespaces.has(target.namespace ?? '')) {
          io.out.write(`${kindName(target.resource)} "${target.name}" deleted\n`);
          continue;
        }
        if (isNotFound(error) && values['ignore-not-found']) continue;
        const during =
          target.file === undefined ? undefined : `error when deleting "${target.file}"`;
        io.err.write(`${serverError(error, during)}\n`);
        failures++;
      }
    }
    if (values.wait) await waitUntilGone(client, deleted);
  } finally {
    client.close();
  }
  return failures > 0 ? 1 : 0;
}
