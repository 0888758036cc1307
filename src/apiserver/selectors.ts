/**
 * Label selectors: the text form of `?labelSelector=` and `kubectl -l`
 * (k8s.io/apimachinery/pkg/labels, selector.go: `=`, `==`, `!=`, `in`,
 * `notin`, `key`, `!key`, `>`, `<`), and the structured form of
 * metav1.LabelSelector (`matchLabels`, `matchExpressions`) that Deployments,
 * Services and NetworkPolicies carry. Both become the same requirements, so
 * one matcher serves the API server, the controller and policy compilers.
 */
import { isLabelValue, isQualifiedName } from '../api/validation/meta.js';

export type LabelRequirement =
  | { key: string; operator: 'In' | 'NotIn'; values: readonly string[] }
  | { key: string; operator: 'Exists' | 'DoesNotExist' }
  | { key: string; operator: 'GreaterThan' | 'LessThan'; value: number };

/** Requirements that must all hold; empty matches every object. */
export type LabelSelector = readonly LabelRequirement[];

export class LabelSelectorError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LabelSelectorError';
  }
}

type Token =
  | { type: 'identifier'; text: string }
  | { type: '=' | '==' | '!=' | '!' | '(' | ')' | ',' | '>' | '<' | 'in' | 'notin' | 'end' };

const specialSymbols = new Set(['=', '!', '(', ')', ',', '>', '<']);
const whitespace = new Set([' ', '\t', '\r', '\n']);

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charAt(i);
    if (whitespace.has(c)) {
      i++;
    } else if (c === '=' || c === '!') {
      const two = text.slice(i, i + 2);
      if (two === '==' || two === '!=') {
        tokens.push({ type: two });
        i += 2;
      } else {
        tokens.push({ type: c });
        i++;
      }
    } else if (specialSymbols.has(c)) {
      tokens.push({ type: c as '(' | ')' | ',' | '>' | '<' });
      i++;
    } else {
      let end = i;
      while (
        end < text.length &&
        !whitespace.has(text.charAt(end)) &&
        !specialSymbols.has(text.charAt(end))
      )
        end++;
      const word = text.slice(i, end);
      tokens.push(
        word === 'in' || word === 'notin' ? { type: word } : { type: 'identifier', text: word },
      );
      i = end;
    }
  }
  tokens.push({ type: 'end' });
  return tokens;
}

/** In value position `in` and `notin` are plain words (upstream's Values lexing mode). */
function valueText(token: Token): string | undefined {
  if (token.type === 'identifier') return token.text;
  return token.type === 'in' || token.type === 'notin' ? token.type : undefined;
}

function describe(token: Token): string {
  return token.type === 'identifier'
    ? `'${token.text}'`
    : token.type === 'end'
      ? 'end of string'
      : `'${token.type}'`;
}

class Parser {
  #position = 0;
  constructor(private readonly tokens: Token[]) {}

  peek(): Token {
    return this.tokens[this.#position] ?? { type: 'end' };
  }

  next(): Token {
    const token = this.peek();
    if (this.#position < this.tokens.length) this.#position++;
    return token;
  }

  parse(): LabelRequirement[] {
    const requirements: LabelRequirement[] = [];
    if (this.peek().type === 'end') return requirements;
    for (;;) {
      requirements.push(this.requirement());
      const token = this.next();
      if (token.type === 'end') return requirements;
      if (token.type !== ',')
        throw new LabelSelectorError(`found ${describe(token)}, expected: ','`);
    }
  }

  requirement(): LabelRequirement {
    let negated = false;
    if (this.peek().type === '!') {
      this.next();
      negated = true;
    }
    const keyToken = this.next();
    if (keyToken.type !== 'identifier') {
      throw new LabelSelectorError(`found ${describe(keyToken)}, expected: identifier`);
    }
    const key = checkKey(keyToken.text);
    const after = this.peek().type;
    if (after === 'end' || after === ',') {
      return { key, operator: negated ? 'DoesNotExist' : 'Exists' };
    }
    if (negated) {
      throw new LabelSelectorError(
        `found ${describe(this.peek())}, expected: ',' or end of string`,
      );
    }
    const operator = this.next();
    switch (operator.type) {
      case '=':
      case '==':
        return { key, operator: 'In', values: [this.exactValue()] };
      case '!=':
        return { key, operator: 'NotIn', values: [this.exactValue()] };
      case 'in':
      case 'notin':
        return {
          key,
          operator: operator.type === 'in' ? 'In' : 'NotIn',
          values: this.valueSet(key),
        };
      case '>':
      case '<': {
        const text = this.exactValue();
        const value = Number(text);
        if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value)) {
          throw new LabelSelectorError(
            `for '${operator.type}' on ${key}, the value must be an integer: got '${text}'`,
          );
        }
        return { key, operator: operator.type === '>' ? 'GreaterThan' : 'LessThan', value };
      }
      default:
        throw new LabelSelectorError(
          `found ${describe(operator)}, expected: in, notin, =, ==, !=, gt, lt`,
        );
    }
  }

  /** The value after `=`, `==`, `!=`: one identifier, or empty before ',' or the end. */
  exactValue(): string {
    const token = this.peek();
    if (token.type === 'end' || token.type === ',') return '';
    this.next();
    const text = valueText(token);
    if (text === undefined) {
      throw new LabelSelectorError(`found ${describe(token)}, expected: identifier`);
    }
    return checkValue(text);
  }

  /** `(a, b, c)` after in/notin; at least one value. */
  valueSet(key: string): string[] {
    const open = this.next();
    if (open.type !== '(') throw new LabelSelectorError(`found ${describe(open)}, expected: '('`);
    const values: string[] = [];
    let expectValue = true;
    for (;;) {
      const token = this.next();
      const text = valueText(token);
      if (token.type === ')') {
        if (expectValue && values.length > 0) values.push('');
        break;
      }
      if (token.type === ',') {
        if (expectValue) values.push('');
        expectValue = true;
      } else if (text !== undefined && expectValue) {
        values.push(checkValue(text));
        expectValue = false;
      } else {
        throw new LabelSelectorError(`found ${describe(token)}, expected: ',', ')' or identifier`);
      }
    }
    if (values.length === 0) {
      throw new LabelSelectorError(
        `for 'in', 'notin' operators, values set can't be empty (key ${key})`,
      );
    }
    return values;
  }
}

function checkKey(key: string): string {
  if (!isQualifiedName(key)) {
    throw new LabelSelectorError(
      `invalid label key "${key}": must be a qualified name (an optional DNS subdomain prefix and "/", then at most 63 alphanumerics, "-", "_" or ".")`,
    );
  }
  return key;
}

function checkValue(value: string): string {
  if (!isLabelValue(value)) {
    throw new LabelSelectorError(
      `invalid label value "${value}": must be at most 63 alphanumerics, "-", "_" or ".", starting and ending with an alphanumeric`,
    );
  }
  return value;
}

/** Parses the text form (`app=web,tier in (a,b),!canary`); LabelSelectorError when malformed. */
export function parseLabelSelector(text: string): LabelSelector {
  return new Parser(tokenize(text)).parse();
}

/** A metav1.LabelSelector as manifests carry it. */
export interface LabelSelectorSpec {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

/**
 * The structured form (metav1.LabelSelectorAsSelector). An empty selector
 * matches everything; a missing one (null) matches nothing, which the caller
 * decides, since upstream kinds differ on it.
 */
export function labelSelectorFromSpec(spec: LabelSelectorSpec): LabelSelector {
  const requirements: LabelRequirement[] = [];
  for (const [key, value] of Object.entries(spec.matchLabels ?? {})) {
    requirements.push({ key: checkKey(key), operator: 'In', values: [checkValue(value)] });
  }
  for (const [i, expression] of (spec.matchExpressions ?? []).entries()) {
    const key = checkKey(expression.key);
    const values = expression.values ?? [];
    switch (expression.operator) {
      case 'In':
      case 'NotIn':
        if (values.length === 0) {
          throw new LabelSelectorError(
            `matchExpressions[${i}].values: for 'In', 'NotIn' operators, values set can't be empty`,
          );
        }
        requirements.push({ key, operator: expression.operator, values: values.map(checkValue) });
        break;
      case 'Exists':
      case 'DoesNotExist':
        if (values.length > 0) {
          throw new LabelSelectorError(
            `matchExpressions[${i}].values: values set must be empty for 'Exists', 'DoesNotExist'`,
          );
        }
        requirements.push({ key, operator: expression.operator });
        break;
      default:
        throw new LabelSelectorError(
          `matchExpressions[${i}].operator: "${expression.operator}" is not a valid label selector operator (In, NotIn, Exists, DoesNotExist)`,
        );
    }
  }
  return requirements;
}

/** Whether `labels` satisfy every requirement (labels.Requirement.Matches). */
export function matchesLabels(
  selector: LabelSelector,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const all = labels ?? {};
  return selector.every((r) => {
    const has = Object.hasOwn(all, r.key);
    const value = all[r.key];
    switch (r.operator) {
      case 'In':
        return has && value !== undefined && r.values.includes(value);
      case 'NotIn':
        return !has || value === undefined || !r.values.includes(value);
      case 'Exists':
        return has;
      case 'DoesNotExist':
        return !has;
      case 'GreaterThan':
      case 'LessThan': {
        if (!has || value === undefined || !/^-?\d+$/.test(value)) return false;
        const n = Number(value);
        return r.operator === 'GreaterThan' ? n > r.value : n < r.value;
      }
    }
  });
}
