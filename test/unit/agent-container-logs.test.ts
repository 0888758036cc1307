// Container log rotation (src/agent/container-logs.ts), its flags, and the tail
// `strata logs --tail N` reads from the end of a log (src/cli/logs.ts), on files in a
// temporary directory.
import assert from 'node:assert/strict';
import {
  closeSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import {
  ContainerLogRotation,
  containerLogFiles,
  rotateContainerLog,
} from '../../src/agent/container-logs.js';
import {
  AgentUsageError,
  parseAgentArgs,
  parseDuration,
  parseSize,
  resolveSettings,
} from '../../src/agent/options.js';
import { lastLines, tailOffset } from '../../src/cli/logs.js';

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'strata-logs-'));
  dirs.push(dir);
  return dir;
}
after(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const read = (path: string): string | undefined =>
  existsSync(path) ? readFileSync(path, 'utf8') : undefined;

describe('rotateContainerLog', () => {
  it('keeps maxFiles files: the log, .1 the newest rotated, the oldest dropped', () => {
    const path = join(tempDir(), 'main.log');
    const limits = { maxBytes: 10, maxFiles: 3 };
    writeFileSync(path, 'short\n');
    assert.equal(rotateContainerLog(path, limits), false, 'not above the cap');
    for (const round of ['first', 'second', 'third']) {
      writeFileSync(path, `${round} round of output\n`);
      assert.equal(rotateContainerLog(path, limits), true);
    }
    assert.equal(read(path), '');
    assert.equal(read(`${path}.1`), 'third round of output\n');
    assert.equal(read(`${path}.2`), 'second round of output\n');
    assert.equal(read(`${path}.3`), undefined, 'the first round fell off');
    assert.equal(read(`${path}.rotating`), undefined);
  });

  it('lets a writer holding the log open with O_APPEND go on at its start', () => {
    const path = join(tempDir(), 'main.log');
    const fd = openSync(path, 'a');
    try {
      writeSync(fd, 'a'.repeat(100) + '\n');
      assert.equal(rotateContainerLog(path, { maxBytes: 50, maxFiles: 2 }), true);
      writeSync(fd, 'after\n');
    } finally {
      closeSync(fd);
    }
    assert.equal(read(path), 'after\n', 'no hole where the old content was');
    assert.equal(statSync(`${path}.1`).size, 101);
  });

  it('finds every container log of every pod, and rotates them in one pass', () => {
    const pods = tempDir();
    mkdirSync(join(pods, 'uid-1'));
    mkdirSync(join(pods, 'uid-2'));
    writeFileSync(join(pods, 'uid-1', 'pod.json'), '{}');
    writeFileSync(join(pods, 'uid-1', 'web.log'), 'x'.repeat(64));
    writeFileSync(join(pods, 'uid-1', 'web.log.1'), 'older');
    writeFileSync(join(pods, 'uid-2', 'db.log'), 'small');
    assert.deepEqual(containerLogFiles(pods).sort(), [
      join(pods, 'uid-1', 'web.log'),
      join(pods, 'uid-2', 'db.log'),
    ]);
    const lines: string[] = [];
    new ContainerLogRotation(pods, { maxBytes: 32, maxFiles: 3 }, 1000, (line) =>
      lines.push(line),
    ).rotateAll();
    assert.deepEqual(lines, []);
    assert.equal(read(join(pods, 'uid-1', 'web.log')), '');
    assert.equal(read(join(pods, 'uid-1', 'web.log.2')), 'older');
    assert.equal(read(join(pods, 'uid-2', 'db.log')), 'small');
    assert.deepEqual(containerLogFiles(join(pods, 'missing')), []);
  });
});

describe('container log flags', () => {
  const base = [
    '--state-dir',
    '/s',
    '--api',
    '/s/api.sock',
    '--node',
    'n',
    '--node-ip',
    '10.0.0.1',
  ];
  const args = [...base, '--backend', 'host-gw'];

  it('parses sizes and durations as kubelet writes them', () => {
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize('512Ki'), 512 * 1024);
    assert.equal(parseSize('10Mi'), 10 * 1024 * 1024);
    assert.equal(parseSize('1Gi'), 1024 ** 3);
    assert.equal(parseSize('10MB'), undefined);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('2m'), 120_000);
    assert.equal(parseDuration('10'), undefined);
  });

  it('defaults to 10 MiB × 3 files checked every 10 s, and takes the flags', () => {
    const defaults = resolveSettings(parseAgentArgs(args));
    assert.deepEqual(defaults.containerLogs, { maxBytes: 10 * 1024 * 1024, maxFiles: 3 });
    assert.equal(defaults.containerLogMonitorIntervalMs, 10_000);
    const set = resolveSettings(
      parseAgentArgs([
        ...args,
        '--container-log-max-size',
        '2Ki',
        '--container-log-max-files',
        '5',
        '--container-log-monitor-interval',
        '100ms',
      ]),
    );
    assert.deepEqual(set.containerLogs, { maxBytes: 2048, maxFiles: 5 });
    assert.equal(set.containerLogMonitorIntervalMs, 100);
  });

  it('refuses a bad size, fewer than 2 files, a bad interval', () => {
    const bad = (...extra: string[]): void => {
      assert.throws(() => resolveSettings(parseAgentArgs([...args, ...extra])), AgentUsageError);
    };
    bad('--container-log-max-size', '10MB');
    bad('--container-log-max-size', '0');
    bad('--container-log-max-files', '1');
    bad('--container-log-max-files', 'three');
    bad('--container-log-monitor-interval', '1ms');
    bad('--container-log-monitor-interval', 'soon');
  });
});

describe('tailOffset', () => {
  const tailOf = (text: string, lines: number): string => {
    const path = join(tempDir(), 'tail.log');
    writeFileSync(path, text);
    const fd = openSync(path, 'r');
    try {
      const buffer = readFileSync(path);
      return buffer.subarray(tailOffset(fd, buffer.length, lines)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  };

  it('finds where the last n lines start, as lastLines cuts them', () => {
    for (const text of ['a\nb\nc\n', 'a\nb\nc', '', '\n\n', 'one line', 'x\n']) {
      for (const lines of [-1, 0, 1, 2, 3, 10]) {
        assert.equal(
          tailOf(text, lines),
          lastLines(text, lines),
          `${JSON.stringify(text)} ${lines}`,
        );
      }
    }
  });

  it('reads backwards across chunks of a log larger than one read', () => {
    const lines = Array.from({ length: 20_000 }, (_, i) => `line ${i} ${'é'.repeat(i % 7)}`);
    const text = lines.join('\n') + '\n';
    assert.ok(Buffer.byteLength(text) > 4 * 64 * 1024);
    for (const n of [1, 5, 3000, 19_999, 20_000, 25_000]) {
      assert.equal(tailOf(text, n), lastLines(text, n), `${n} lines`);
    }
  });
});
