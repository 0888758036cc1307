// Runs the whole test suite: unit tests (pure, no root) and end-to-end tests
// (root, real network namespaces). Each file runs in its own process.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const dirs = ['dist/test/unit', 'dist/test/e2e'].filter((d) => existsSync(d));
const args = ['--test', '--test-reporter=spec', '--test-concurrency=2', ...dirs];
const child = spawnSync(process.execPath, args, { stdio: 'inherit' });
process.exit(child.status ?? 1);
