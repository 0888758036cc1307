/**
 * `strata get KIND [NAME...] [-n NS | -A] [-l SELECTOR] [-o wide|yaml|json|name]`
 * (also `KIND/NAME...`): kubectl get's tables and formats (printers.ts).
 */
import { parseArgs } from 'node:util';
import { type KubeObject, type ResourceType, apiVersionOf } from '../api/types.js';
import { type ApiClient, ApiError } from '../client/index.js';
import { policyInputFromObjects } from '../policy/input.js';
import { buildPolicyModel } from '../policy/model.js';
import {
  type ObjectRef,
  UsageError,
  namespaceFor,
  namespaceOption,
  objectArgs,
  parseCommandLine,
  resolveKind,
  targetOptions,
} from './args.js';
import { readDropCounters, policyDrops } from './policy-drops.js';
import type { ClusterRecord } from '../cluster/state.js';
import { connect, serverError } from './connect.js';
import type { Io } from './io.js';
import { type OutputFormat, printObjects, printTable } from './printers.js';
import type { ColumnContext } from './table-columns.js';

const outputs = ['wide', 'yaml', 'json', 'name'] as const;
type Output = (typeof outputs)[number];

function outputOf(text: string | undefined): Output | undefined {
  if (text === undefined) return undefined;
  if (!(outputs as readonly string[]).includes(text)) {
    throw new UsageError(
      `strata get: unable to match a printer suitable for the output format "${text}", allowed formats are: ${outputs.join(',')}`,
    );
  }
  return text as Output;
}

/** Lists from a Kubernetes API server leave apiVersion and kind out of their items. */
function typed(resource: ResourceType, object: KubeObject): KubeObject {
  return {
    ...object,
    apiVersion: object.apiVersion || apiVersionOf(resource),
    kind: object.kind || resource.kind,
  };
}

function isNetworkPolicy(resource: ResourceType): boolean {
  return resource.group === 'networking.k8s.io' && resource.kind === 'NetworkPolicy';
}

/**
 * What `-o wide` columns need beyond the objects: for NetworkPolicies, the
 * pods each selects, from the policy model over the pods of their namespaces.
 * Nothing is fetched for other kinds or formats.
 */
async function columnContext(
  client: ApiClient,
  resource: ResourceType,
  objects: readonly KubeObject[],
  output: Output | undefined,
  record: ClusterRecord | undefined,
): Promise<ColumnContext> {
  if (output !== 'wide' || !isNetworkPolicy(resource) || objects.length === 0) return {};
  const namespaces = [...new Set(objects.map((p) => p.metadata.namespace ?? 'default'))];
  const pods = await client.list(resolveKind('pods'), {
    namespace: namespaces.length === 1 ? namespaces[0] : undefined,
  });
  // Which pods a policy selects depends only on its podSelector and the pods of
  // its namespace; namespaces' labels and nodes matter only to its peers.
  const input = policyInputFromObjects({
    policies: objects,
    pods: pods.items,
    namespaces: [],
    nodes: [],
  });
  const selectedPods = buildPolicyModel(input).selected;
  // Counters live in the nodes' namespaces: only a local cluster's record names them.
  if (!record) return { selectedPods };
  const counters = readDropCounters(record);
  return { selectedPods, droppedPackets: (policy) => policyDrops(counters, policy) };
}

/** Objects of one kind in the chosen format. */
export function render(
  resource: ResourceType,
  objects: readonly KubeObject[],
  output: Output | undefined,
  options: { allNamespaces: boolean; namespace: string; list: boolean; context?: ColumnContext },
): string {
  if (output === undefined || output === 'wide') {
    return printTable(resource, objects, {
      wide: output === 'wide',
      allNamespaces: options.allNamespaces,
      namespace: options.namespace,
      context: options.context,
    });
  }
  return printObjects(objects, output satisfies OutputFormat, { list: options.list });
}

export async function getCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parseCommandLine('get', () =>
    parseArgs({
      args: [...argv],
      options: {
        ...targetOptions,
        ...namespaceOption,
        'all-namespaces': { type: 'boolean', short: 'A' },
        output: { type: 'string', short: 'o' },
        selector: { type: 'string', short: 'l' },
      },
      allowPositionals: true,
      strict: true,
    }),
  );
  const output = outputOf(values.output);
  const parsed = objectArgs('get', positionals);
  const allNamespaces = values['all-namespaces'] ?? false;
  const namespaceFlag = values.namespace ?? 'default';
  const { client, record } = connect(values);
  try {
    if (!('refs' in parsed) && parsed.names.length === 0) {
      const { resource } = parsed;
      const list = await client.list(resource, {
        namespace: allNamespaces ? undefined : namespaceFor(resource, undefined, namespaceFlag),
        ...(values.selector === undefined ? {} : { labelSelector: values.selector }),
      });
      const objects = list.items.map((item) => typed(resource, item));
      const context = await columnContext(client, resource, objects, output, record);
      io.out.write(
        render(resource, objects, output, {
          allNamespaces,
          namespace: namespaceFlag,
          list: true,
          context,
        }),
      );
      return 0;
    }
    const refs: ObjectRef[] =
      'refs' in parsed
        ? parsed.refs
        : parsed.names.map((name) => ({ resource: parsed.resource, name }));
    let failures = 0;
    const found: { resource: ResourceType; object: KubeObject }[] = [];
    for (const { resource, name } of refs) {
      try {
        const namespace = namespaceFor(resource, undefined, namespaceFlag);
        found.push({
          resource,
          object: typed(resource, await client.get(resource, name, { namespace })),
        });
      } catch (error) {
        if (!(error instanceof ApiError)) throw error;
        io.err.write(`${serverError(error)}\n`);
        failures++;
      }
    }
    const options = { allNamespaces: false, namespace: namespaceFlag, list: refs.length > 1 };
    if (output === undefined || output === 'wide') {
      // One table per kind, in the order the kinds were named.
      const kinds = [...new Set(found.map((f) => f.resource))];
      const tables: string[] = [];
      for (const resource of kinds) {
        const objects = found.filter((f) => f.resource === resource).map((f) => f.object);
        const context = await columnContext(client, resource, objects, output, record);
        tables.push(render(resource, objects, output, { ...options, context }));
      }
      io.out.write(tables.join('\n'));
    } else if (found.length > 0) {
      const [first] = found;
      if (first)
        io.out.write(
          render(
            first.resource,
            found.map((f) => f.object),
            output,
            options,
          ),
        );
    }
    return failures > 0 ? 1 : 0;
  } finally {
    client.close();
  }
}
