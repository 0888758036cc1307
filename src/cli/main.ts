/**
 * The strata command line. For now: `version`; the local cluster commands
 * (up, down, apply, get, ...) arrive with the cluster itself.
 */
import { strataVersion } from '../version.js';
import { supportedVersions } from '../cni/version.js';
import { runDemo } from './demo.js';

const usage = `strata — Kubernetes networking, both layers

Usage:
  strata demo             two pods wired by strata-cni in network namespaces, talking over TCP (root)
  strata version          print strata's version and the CNI versions it speaks
  strata help             this text
`;

/** Runs the CLI and returns its exit code. */
export async function main(
  argv: readonly string[],
  out = process.stdout,
  err = process.stderr,
): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'demo':
      return runDemo(out);
    case 'version':
    case '--version':
      out.write(
        `strata ${strataVersion} (CNI ${supportedVersions.join(', ')}; node ${process.versions.node})\n`,
      );
      return 0;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out.write(usage);
      return 0;
    default:
      err.write(`strata: unknown command "${command}"\n\n${usage}`);
      return 2;
  }
}
