/**
 * `strata apply -f FILE|DIR|- [-n NS]`: kubectl apply's client side. Every
 * manifest is loaded and validated first; any problem is printed (file,
 * document, object, field) and nothing is sent. Then each object in order
 * is created, or patched to match the manifest (apply-patch.ts), with
 * kubectl's line for each: `pod/web created`, `deployment.apps/web
 * configured`, `service/web unchanged`. A server error for one object is
 * printed and the others still go; the exit code is then 1.
 */
import { parseArgs } from 'node:util';
import { resourceForKind } from '../api/registry.js';
import type { KubeObject, ResourceType } from '../api/types.js';
import { type ApiClient, ApiError, isNotFound } from '../client/index.js';
import {
  type ApplyAction,
  appliedConfiguration,
  applyPatch,
  withLastApplied,
} from './apply-patch.js';
import {
  CommandError,
  UsageError,
  namespaceFor,
  namespaceOption,
  parseCommandLine,
  targetOptions,
} from './args.js';
import { connect, serverError } from './connect.js';
import type { Io } from './io.js';
import {
  type LoadedManifest,
  ManifestSourceError,
  formatProblem,
  loadManifests,
  validateManifests,
} from './manifests.js';
import { objectName } from './printers.js';

/** `-f` sources, loaded: every manifest of every source, in order. */
export function loadSources(
  sources: readonly string[],
  io: Io,
  recursive: boolean,
): LoadedManifest[] {
  try {
    return sources.flatMap((source) => loadManifests(source, () => io.readStdin(), { recursive }));
  } catch (error) {
    // The message names the path and what is wrong with it; the errno adds nothing.
    if (error instanceof ManifestSourceError) throw new CommandError(error.message);
    throw error;
  }
}

/** The line kubectl prints for an applied object. */
export function applyLine(object: KubeObject, action: ApplyAction): string {
  return `${objectName(object)} ${action}\n`;
}

/** Creates or patches one object; returns what happened. */
export async function applyObject(
  client: ApiClient,
  resource: ResourceType,
  object: KubeObject,
  namespace: string | undefined,
): Promise<ApplyAction> {
  const name = object.metadata.name ?? '';
  const config = appliedConfiguration(object);
  let current: KubeObject;
  try {
    current = await client.get(resource, name, { namespace });
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await client.create(withLastApplied(config), { namespace });
    return 'created';
  }
  const patch = applyPatch(current, config);
  if (patch === undefined) return 'unchanged';
  await client.patch(resource, name, patch, { namespace, type: 'merge' });
  return 'configured';
}

export async function applyCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values } = parseCommandLine('apply', () =>
    parseArgs({
      args: [...argv],
      options: {
        ...targetOptions,
        ...namespaceOption,
        filename: { type: 'string', short: 'f', multiple: true },
        recursive: { type: 'boolean', short: 'R' },
      },
      strict: true,
    }),
  );
  const sources = values.filename ?? [];
  if (sources.length === 0) {
    throw new UsageError(
      'strata apply: -f is required: a manifest file, a directory of them, or - for stdin',
    );
  }
  const manifests = loadSources(sources, io, values.recursive ?? false);
  const problems = validateManifests(manifests, {
    namespace: values.namespace ?? 'default',
    enforceNamespace: values.namespace !== undefined,
  });
  if (problems.length > 0) {
    for (const problem of problems) io.err.write(`${formatProblem(problem)}\n`);
    io.err.write(
      `error: ${problems.length} problem${problems.length === 1 ? '' : 's'} found; nothing was applied\n`,
    );
    return 1;
  }
  if (manifests.length === 0) throw new CommandError('no objects passed to apply');

  const { client } = connect(values);
  let failures = 0;
  try {
    for (const manifest of manifests) {
      const object = manifest.object as KubeObject;
      // Validated above: every object's kind is served.
      const resource = resourceForKind(object.apiVersion, object.kind) as ResourceType;
      if (object.metadata.name === undefined || object.metadata.name === '') {
        io.err.write(`error: from ${manifest.file}: cannot use generate name with apply\n`);
        failures++;
        continue;
      }
      const namespace = namespaceFor(resource, object.metadata.namespace, values.namespace);
      try {
        io.out.write(applyLine(object, await applyObject(client, resource, object, namespace)));
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        io.err.write(`${serverError(error, `error when applying "${manifest.file}"`)}\n`);
        failures++;
      }
    }
  } finally {
    client.close();
  }
  return failures > 0 ? 1 : 0;
}
