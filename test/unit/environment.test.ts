// The runtime's parameters in CNI_* variables (CNI spec 1.1.0, "Parameters"),
// checked the way libcni's skel and pkg/utils check them.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkArgs,
  readEnvironment,
  validateContainerId,
  validateInterfaceName,
} from '../../src/cni/environment.js';
import { CniErrorCode } from '../../src/cni/errors.js';

const add = {
  CNI_COMMAND: 'ADD',
  CNI_CONTAINERID: 'c0ffee',
  CNI_NETNS: '/var/run/netns/pod',
  CNI_IFNAME: 'eth0',
  CNI_PATH: '/opt/cni/bin',
};

// Code 4 is the spec's "Invalid necessary environment variables".
const invalidEnv = { name: 'CniError', code: CniErrorCode.InvalidEnvironmentVariables };

describe('readEnvironment', () => {
  it('reads an ADD', () => {
    const env = readEnvironment({
      ...add,
      CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0',
      CNI_PATH: '/opt/cni/bin::/usr/lib/cni:',
    });
    assert.equal(env.command, 'ADD');
    assert.equal(env.containerId, 'c0ffee');
    assert.equal(env.netns, '/var/run/netns/pod');
    assert.equal(env.ifname, 'eth0');
    assert.deepEqual(
      [...env.args],
      [
        ['IgnoreUnknown', '1'],
        ['K8S_POD_NAMESPACE', 'default'],
        ['K8S_POD_NAME', 'web-0'],
      ],
    );
    assert.deepEqual(env.path, ['/opt/cni/bin', '/usr/lib/cni']);
  });

  // Per operation, which variables the spec requires (CNI_NETNS is optional for DEL).
  const missing: { command: string; unset: string }[] = [
    { command: 'ADD', unset: 'CNI_CONTAINERID' },
    { command: 'ADD', unset: 'CNI_NETNS' },
    { command: 'ADD', unset: 'CNI_IFNAME' },
    { command: 'CHECK', unset: 'CNI_CONTAINERID' },
    { command: 'CHECK', unset: 'CNI_NETNS' },
    { command: 'CHECK', unset: 'CNI_IFNAME' },
    { command: 'DEL', unset: 'CNI_CONTAINERID' },
    { command: 'DEL', unset: 'CNI_IFNAME' },
  ];
  for (const c of missing) {
    it(`${c.command} without ${c.unset}: code 4 naming the variable`, () => {
      const env = Object.fromEntries(
        Object.entries({ ...add, CNI_COMMAND: c.command }).filter(([key]) => key !== c.unset),
      );
      assert.throws(() => readEnvironment(env), {
        ...invalidEnv,
        message: new RegExp(`${c.unset} is required for ${c.command}`),
      });
      // An empty value is as good as unset.
      assert.throws(() => readEnvironment({ ...env, [c.unset]: '' }), invalidEnv);
    });
  }

  it('DEL needs no CNI_NETNS: the namespace may already be gone', () => {
    const env = readEnvironment({
      CNI_COMMAND: 'DEL',
      CNI_CONTAINERID: 'c0ffee',
      CNI_IFNAME: 'eth0',
    });
    assert.equal(env.netns, '');
  });

  for (const command of ['VERSION', 'STATUS', 'GC']) {
    it(`${command} needs no attachment variables`, () => {
      const env = readEnvironment({ CNI_COMMAND: command });
      assert.equal(env.command, command);
      assert.equal(env.containerId, '');
      assert.deepEqual(env.path, []);
    });
  }

  const invalid: { env: Record<string, string>; message: RegExp }[] = [
    { env: {}, message: /CNI_COMMAND is not set/ },
    { env: { CNI_COMMAND: '' }, message: /CNI_COMMAND is not set/ },
    { env: { CNI_COMMAND: 'add' }, message: /CNI_COMMAND "add" is not one of/ },
    { env: { CNI_COMMAND: 'UPDATE' }, message: /CNI_COMMAND "UPDATE"/ },
    { env: { ...add, CNI_NETNS: 'var/run/netns/pod' }, message: /CNI_NETNS .* absolute path/ },
    { env: { ...add, CNI_CONTAINERID: '-abc' }, message: /CNI_CONTAINERID "-abc" is invalid/ },
    { env: { ...add, CNI_IFNAME: 'eth0/1' }, message: /CNI_IFNAME "eth0\/1"/ },
    { env: { ...add, CNI_ARGS: 'K8S_POD_NAME' }, message: /CNI_ARGS: "K8S_POD_NAME" is not of/ },
    { env: { ...add, CNI_ARGS: '=web' }, message: /CNI_ARGS: "=web"/ },
  ];
  for (const c of invalid) {
    it(`refuses ${JSON.stringify(c.env)} with code 4`, () => {
      assert.throws(() => readEnvironment(c.env), { ...invalidEnv, message: c.message });
    });
  }

  it('keeps an "=" inside a CNI_ARGS value', () => {
    const env = readEnvironment({ ...add, CNI_ARGS: 'LABEL=a=b' });
    assert.equal(env.args.get('LABEL'), 'a=b');
  });
});

describe('validateInterfaceName', () => {
  // libcni pkg/utils ValidateInterfaceName, after the kernel's dev_valid_name:
  // not empty, at most IFNAMSIZ-1 = 15 bytes, not "." or "..", no "/", ":" or white space.
  const good = ['eth0', 'e', 'net1', 'a'.repeat(15), 'eth0.100', 'veth-ab_cd'];
  for (const name of good) {
    it(`accepts ${JSON.stringify(name)}`, () => {
      validateInterfaceName(name, 'CNI_IFNAME');
    });
  }

  const bad: { name: string; why: RegExp }[] = [
    { name: '', why: /must not be empty/ },
    { name: 'a'.repeat(16), why: /longer than 15/ },
    { name: '.', why: /must not be "\." or "\.\."/ },
    { name: '..', why: /must not be/ },
    { name: 'eth/0', why: /contains/ },
    { name: 'eth:0', why: /contains/ },
    { name: 'eth 0', why: /contains/ },
    { name: 'eth\t0', why: /contains/ },
    { name: 'eth0\n', why: /contains/ },
    // IFNAMSIZ counts bytes: nine "é" are 9 characters but 18 bytes, which
    // the kernel refuses; libcni measures len() of the Go string, in bytes.
    { name: 'é'.repeat(9), why: /longer than 15/ },
  ];
  for (const c of bad) {
    it(`refuses ${JSON.stringify(c.name)} with code 4, naming the variable`, () => {
      assert.throws(
        () => {
          validateInterfaceName(c.name, 'CNI_IFNAME');
        },
        { ...invalidEnv, message: new RegExp(`^CNI_IFNAME .*${c.why.source}`, 's') },
      );
    });
  }
});

describe('validateContainerId', () => {
  // libcni ValidateContainerID: ^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$
  const good = ['c0ffee', 'A', '0', 'pod_1.web-2', 'a'.repeat(64)];
  for (const id of good) {
    it(`accepts ${JSON.stringify(id)}`, () => {
      validateContainerId(id, 'CNI_CONTAINERID');
    });
  }
  const bad = ['', '-abc', '_abc', '.abc', 'abc/def', 'abc def', 'abc:def', 'abc\n'];
  for (const id of bad) {
    it(`refuses ${JSON.stringify(id)} with code 4`, () => {
      assert.throws(
        () => {
          validateContainerId(id, 'CNI_CONTAINERID');
        },
        { ...invalidEnv, message: /^CNI_CONTAINERID .* is invalid/s },
      );
    });
  }
});

describe('checkArgs', () => {
  const known = ['IP', 'MAC', 'K8S_POD_NAME'];
  const args = (text: string): Map<string, string> =>
    readEnvironment({ ...add, CNI_ARGS: text }).args;

  it('accepts known keys', () => {
    checkArgs(args('IP=10.1.0.9;K8S_POD_NAME=web'), known);
    checkArgs(args(''), known);
  });

  it('refuses an unknown key with code 4, naming it and IgnoreUnknown', () => {
    assert.throws(
      () => {
        checkArgs(args('IP=10.1.0.9;K8S_POD_INFRA_CONTAINER_ID=abc'), known);
      },
      { ...invalidEnv, message: /"K8S_POD_INFRA_CONTAINER_ID".*IgnoreUnknown=1/ },
    );
  });

  // libcni types.UnmarshallableBool: "1", "true" and "True" are true.
  for (const value of ['1', 'true', 'True']) {
    it(`IgnoreUnknown=${value} lets unknown keys through`, () => {
      checkArgs(args(`IgnoreUnknown=${value};FOO=bar`), known);
    });
  }
  for (const value of ['0', 'false', 'False']) {
    it(`IgnoreUnknown=${value} does not`, () => {
      assert.throws(() => {
        checkArgs(args(`IgnoreUnknown=${value};FOO=bar`), known);
      }, invalidEnv);
    });
  }
});
