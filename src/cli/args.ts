/**
 * Command-line arguments as every strata command reads them (node:util
 * parseArgs): the flags that pick the cluster, the namespace flags, and
 * kinds named the way kubectl lets users name them.
 */
import { resourcesForName } from '../api/registry.js';
import type { ResourceType } from '../api/types.js';

/** The command line is wrong: the message says how; the exit code is 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'STRATA_ERR_USAGE';
}

/** A failure to report as one line (`error: ...`), exit code 1. */
export class CommandError extends Error {
  override readonly name = 'CommandError';
  readonly code = 'STRATA_ERR_COMMAND';
}

/** `--name` and `--state-dir`: which cluster a command talks to. */
export const targetOptions = {
  name: { type: 'string' },
  'state-dir': { type: 'string' },
} as const;

/** `-n`/`--namespace`. */
export const namespaceOption = {
  namespace: { type: 'string', short: 'n' },
} as const;

/** The cluster the parsed flags name, as src/cluster takes it. */
export function targetFromFlags(values: { name?: string; 'state-dir'?: string }): {
  name?: string;
  stateDir?: string;
} {
  return {
    ...(values.name === undefined ? {} : { name: values.name }),
    ...(values['state-dir'] === undefined ? {} : { stateDir: values['state-dir'] }),
  };
}

/** Runs a parseArgs call, turning its errors into a UsageError for `strata <command>`. */
export function parseCommandLine<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    if (code?.startsWith('ERR_PARSE_ARGS_')) {
      // parseArgs' advice about '--' fits its own examples, not strata's commands.
      throw new UsageError(`strata ${command}: ${message.replace(/\. To specify .*$/s, '')}`);
    }
    throw error;
  }
}

/** Parses a decimal integer flag, or throws a UsageError naming it. */
export function integerFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^-?\d+$/.test(text))
    throw new UsageError(`${flag} ${JSON.stringify(text)}: expected an integer`);
  return Number(text);
}

/** The kind a user typed (`pods`, `po`, `deploy`, `networkpolicies.networking.k8s.io`). */
export function resolveKind(name: string): ResourceType {
  const [resource] = resourcesForName(name);
  if (!resource) throw new CommandError(`the server doesn't have a resource type "${name}"`);
  return resource;
}

export interface ObjectRef {
  resource: ResourceType;
  name: string;
}

/**
 * The objects named by `KIND NAME...` or `KIND/NAME...`, as kubectl reads
 * them; `KIND` alone gives no names.
 */
export function objectArgs(
  command: string,
  positionals: readonly string[],
): { resource: ResourceType; names: string[] } | { refs: ObjectRef[] } {
  const [first, ...rest] = positionals;
  if (first === undefined) {
    throw new UsageError(`strata ${command}: name a kind, for example "strata ${command} pods"`);
  }
  if (!first.includes('/')) return { resource: resolveKind(first), names: rest };
  return {
    refs: positionals.map((arg) => {
      const slash = arg.indexOf('/');
      if (slash <= 0 || slash === arg.length - 1) {
        throw new UsageError(
          `strata ${command}: there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (got ${JSON.stringify(arg)})`,
        );
      }
      return { resource: resolveKind(arg.slice(0, slash)), name: arg.slice(slash + 1) };
    }),
  };
}

/** The namespace an object of `resource` is in: its own, else the command's. */
export function namespaceFor(
  resource: ResourceType,
  given: string | undefined,
  flag: string | undefined,
): string | undefined {
  if (!resource.namespaced) return undefined;
  return given ?? flag ?? 'default';
}
