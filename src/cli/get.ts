/**
 * `strata get KIND [NAME...] [-n NS | -A] [-l SELECTOR] [-o wide|yaml|json|name]`
 * (also `KIND/NAME...`): kubectl get's tables and formats (printers.ts).
 */
import { parseArgs } from 'node:util';
import { type KubeObject, type ResourceType, apiVersionOf } from '../api/types.js';
import { ApiError } from '../client/index.js';
import {
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
import { type OutputFormat, printObjects, printTable } from './printers.js';

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

/** Objects of one kind in the chosen format. */
export function render(
  resource: ResourceType,
  objects: readonly KubeObject[],
  output: Output | undefined,
  options: { allNamespaces: boolean; namespace: string; list: boolean },
): string {
  if (output === undefined || output === 'wide') {
    return printTable(resource, objects, {
      wide: output === 'wide',
      allNamespaces: options.allNamespaces,
      namespace: options.namespace,
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
  const { client } = connect(values);
  try {
    if (!('refs' in parsed) && parsed.names.length === 0) {
      const { resource } = parsed;
      const list = await client.list(resource, {
        namespace: allNamespaces ? undefined : namespaceFor(resource, undefined, namespaceFlag),
        ...(values.selector === undefined ? {} : { labelSelector: values.selector }),
      });
      const objects = list.items.map((item) => typed(resource, item));
      io.out.write(
        render(resource, objects, output, { allNamespaces, namespace: namespaceFlag, list: true }),
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
      const tables = kinds.map((resource) =>
        render(
          resource,
          found.filter((f) => f.resource === resource).map((f) => f.object),
          output,
          options,
        ),
      );
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
