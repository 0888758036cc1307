// Label selectors as the API server, the controller and policy compilers
// share them: the text form of ?labelSelector= (labels.Parse) and the
// structured metav1.LabelSelector, matched by one function.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  LabelSelectorError,
  labelSelectorFromSpec,
  matchesLabels,
  parseLabelSelector,
} from '../../src/apiserver/selectors.js';

const labels = { app: 'web', tier: 'front', replicas: '3' };

describe('parseLabelSelector', () => {
  const cases: [string, boolean][] = [
    ['', true],
    ['app=web', true],
    ['app = web', true],
    ['app==web', true],
    ['app!=web', false],
    ['app!=db', true],
    ['missing!=x', true],
    ['tier in (front, back)', true],
    ['tier notin (front)', false],
    ['missing notin (x)', true],
    ['tier', true],
    ['!tier', false],
    ['!missing', true],
    ['replicas>2', true],
    ['replicas<3', false],
    ['app>1', false],
    ['app=web,tier=back', false],
    ['app=', false],
    ['missing=', false],
    ['tier in (in, notin, front)', true],
  ];
  for (const [selector, expected] of cases) {
    it(`"${selector}" ${expected ? 'matches' : 'does not match'}`, () => {
      assert.equal(matchesLabels(parseLabelSelector(selector), labels), expected);
    });
  }

  it('parses into requirements', () => {
    assert.deepEqual(parseLabelSelector('a in (x,y),!b,c!=d,e>5'), [
      { key: 'a', operator: 'In', values: ['x', 'y'] },
      { key: 'b', operator: 'DoesNotExist' },
      { key: 'c', operator: 'NotIn', values: ['d'] },
      { key: 'e', operator: 'GreaterThan', value: 5 },
    ]);
  });

  const malformed: [string, RegExp][] = [
    ['app in web', /expected: '\('/],
    ['app in ()', /values set can't be empty/],
    ['app=web,', /expected: identifier/],
    ['=web', /expected: identifier/],
    ['app web', /expected: in, notin, =, ==, !=, gt, lt/],
    ['app>x', /must be an integer/],
    ['!app=web', /expected: ',' or end of string/],
    ['Bad Key!=x', /expected: in, notin/],
    ['app=not valid!', /./],
    ['-bad=x', /invalid label key "-bad"/],
  ];
  for (const [selector, message] of malformed) {
    it(`rejects "${selector}"`, () => {
      assert.throws(
        () => parseLabelSelector(selector),
        (e: unknown) => e instanceof LabelSelectorError && message.test(e.message),
      );
    });
  }
});

describe('labelSelectorFromSpec', () => {
  it('combines matchLabels and matchExpressions; an empty selector matches everything', () => {
    const selector = labelSelectorFromSpec({
      matchLabels: { app: 'web' },
      matchExpressions: [
        { key: 'tier', operator: 'In', values: ['front', 'back'] },
        { key: 'canary', operator: 'DoesNotExist' },
      ],
    });
    assert.equal(matchesLabels(selector, labels), true);
    assert.equal(matchesLabels(selector, { ...labels, canary: 'yes' }), false);
    assert.equal(matchesLabels(labelSelectorFromSpec({}), {}), true);
  });

  it('rejects operators and value sets upstream rejects, naming the expression', () => {
    assert.throws(
      () => labelSelectorFromSpec({ matchExpressions: [{ key: 'a', operator: 'Equals' }] }),
      /matchExpressions\[0\]\.operator: "Equals" is not a valid/,
    );
    assert.throws(
      () => labelSelectorFromSpec({ matchExpressions: [{ key: 'a', operator: 'In', values: [] }] }),
      /values set can't be empty/,
    );
    assert.throws(
      () =>
        labelSelectorFromSpec({
          matchExpressions: [{ key: 'a', operator: 'Exists', values: ['x'] }],
        }),
      /must be empty/,
    );
  });
});
