// libnftables in-process (src/kernel/libnftables.ts): a context opened in a
// throwaway namespace acts there and nowhere else, reports nft's own error
// text, and serialises its transactions.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { NftContext, NftError } from '../../src/kernel/libnftables.js';
import { Lab } from '../support/netns.js';

const root = process.getuid?.() === 0;

describe('NftContext', { skip: !root && 'needs root for a network namespace' }, () => {
  const lab = new Lab();
  let ns = '';
  let context: NftContext;
  before(async () => {
    ns = lab.netns('nft');
    context = await NftContext.open(`/var/run/netns/${ns}`);
  });
  after(async () => {
    await context.close();
    await context.close();
    lab.cleanup();
  });

  /** The tables of a namespace (read only: the root namespace when none is named). */
  const tables = (netns?: string): string =>
    execFileSync(
      netns ? 'ip' : 'nft',
      [...(netns ? ['netns', 'exec', netns, 'nft'] : []), 'list', 'tables'],
      {
        encoding: 'utf8',
      },
    );

  it('applies a transaction in the namespace it was opened in, not the caller’s', async () => {
    const name = `t_${ns.replace(/[^a-z0-9]/gi, '_')}`;
    await context.run(`add table inet ${name}\nadd counter inet ${name} c\n`);
    assert.match(tables(ns), new RegExp(`table inet ${name}`));
    assert.doesNotMatch(tables(), new RegExp(`table inet ${name}`));
    const listed = await context.run(`list counter inet ${name} c\n`);
    assert.match(listed, /packets 0 bytes 0/);
  });

  it('rejects a bad transaction with nft’s message and applies none of it', async () => {
    await assert.rejects(
      context.run('add table inet half\nadd chain inet nosuch c\n'),
      (error: unknown) =>
        error instanceof NftError && /No such file or directory/.test(error.message),
    );
    assert.doesNotMatch(tables(ns), /table inet half/);
  });

  it('runs concurrent transactions one after another', async () => {
    await context.run('add table inet seq\n');
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => context.run(`add counter inet seq c${i}\n`)),
    );
    const out = execFileSync('ip', ['netns', 'exec', ns, 'nft', 'list', 'counters'], {
      encoding: 'utf8',
    });
    assert.equal(out.match(/counter c\d+/g)?.length, 20);
  });
});
