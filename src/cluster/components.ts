/**
 * The cluster's components as `strata <component>` subcommands, and where
 * their code lives. The controller and the node agent are modules of their
 * own (src/controller/, src/agent/), loaded only when their subcommand runs;
 * the paths below are the one place that says where.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ClusterError } from './errors.js';

/** A component's entry point: the module and the function it exports, called with the subcommand's argv. */
export interface ComponentModule {
  /** What it is, for messages. */
  title: string;
  /** Relative to this file (compiled: dist/src/cluster/). */
  path: string;
  exportName: string;
}

export const componentModules = {
  controller: {
    title: 'the controller',
    path: '../controller/command.js',
    exportName: 'controllerCommand',
  },
  agent: { title: 'the node agent', path: '../agent/command.js', exportName: 'agentCommand' },
  'mesh-proxy': {
    title: "the node's mesh proxy",
    path: '../agent/mesh-command.js',
    exportName: 'meshProxyCommand',
  },
} as const satisfies Record<string, ComponentModule>;

export type LoadableComponent = keyof typeof componentModules;

const here = dirname(fileURLToPath(import.meta.url));

/** dist/bin/strata: the CLI launcher every component process is started with. */
export const strataExecutable = join(here, '..', '..', 'bin', 'strata');

/** dist/bin/strata-cni: the CNI plugin the agents call. */
export const cniExecutable = join(here, '..', '..', 'bin', 'strata-cni');

function modulePath(component: LoadableComponent): string {
  return join(here, componentModules[component].path);
}

/** Why `strata <component>` cannot run yet, or undefined when its module is there. */
export function componentMissing(component: LoadableComponent): string | undefined {
  const path = modulePath(component);
  if (existsSync(path)) return undefined;
  return `${componentModules[component].title} is not part of this build yet: ${path} does not exist`;
}

type CommandFunction = (argv: readonly string[]) => unknown;

/**
 * Runs `strata controller|agent argv...`: loads the component's module and
 * calls its command function; a number it returns (or resolves to) is the
 * exit code.
 */
export async function runComponent(
  component: LoadableComponent,
  argv: readonly string[],
): Promise<number> {
  const missing = componentMissing(component);
  if (missing !== undefined) {
    throw new ClusterError('STRATA_ERR_COMPONENT_MISSING', `strata ${component}: ${missing}`);
  }
  const { exportName, title } = componentModules[component];
  const loaded = (await import(pathToFileURL(modulePath(component)).href)) as Record<
    string,
    unknown
  >;
  const command = loaded[exportName];
  if (typeof command !== 'function') {
    const exported = Object.keys(loaded).join(', ') || 'nothing';
    throw new ClusterError(
      'STRATA_ERR_COMPONENT_MISSING',
      `strata ${component}: ${modulePath(component)} does not export ${exportName}(argv), ${title}'s command function (it exports ${exported})`,
    );
  }
  const code = await (command as CommandFunction)(argv);
  return typeof code === 'number' ? code : 0;
}
