/**
 * YAML as Kubernetes reads and writes it. kubectl and the API server go
 * through sigs.k8s.io/yaml, which is go-yaml v2: YAML 1.1 scalars (`yes`,
 * `on` and `y` are booleans, `0644` is octal) but no timestamps or
 * sexagesimal numbers, which stay strings. Writing with the same schema
 * quotes every string that would read back as something else, so
 * `strata get -o yaml` output applies unchanged.
 */
import type {
  CreateNodeOptions,
  DocumentOptions,
  ParseOptions,
  SchemaOptions,
  Tags,
  ToStringOptions,
} from 'yaml';

// By tag name (as the 1.1 schema lists them) and by id (as `customTags` may name them).
const notInGoYaml = new Set([
  'tag:yaml.org,2002:timestamp',
  'tag:yaml.org,2002:binary',
  'tag:yaml.org,2002:omap',
  'tag:yaml.org,2002:pairs',
  'tag:yaml.org,2002:set',
  'timestamp',
  'binary',
  'omap',
  'pairs',
  'set',
  'intTime',
  'floatTime',
]);

/** Options for `parseAllDocuments`/`parseDocument`: go-yaml v2's scalars, positions without snippets. */
export const kubeYamlParseOptions: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  prettyErrors: false,
  customTags: (tags: Tags) =>
    tags.filter((tag) =>
      typeof tag === 'string'
        ? !notInGoYaml.has(tag)
        : !notInGoYaml.has(tag.tag) && !('format' in tag && tag.format === 'TIME'),
    ),
};

/** Options for `stringify`: kubectl's layout (sequences not indented under their key, no folding). */
export const kubeYamlStringifyOptions: DocumentOptions &
  SchemaOptions &
  CreateNodeOptions &
  ToStringOptions = {
  version: '1.1',
  indentSeq: false,
  lineWidth: 0,
};
