/**
 * apps/v1 Deployment, after pkg/apis/apps/validation (ValidateDeploymentSpec,
 * ValidatePodTemplateSpecForReplicaSet, ValidateDeploymentStrategy) and
 * pkg/apis/apps/v1/defaults.go (SetDefaults_Deployment).
 */
import type { FieldError, KubeObject } from '../types.js';
import { isPercent } from './formats.js';
import { defaultPodSpec, podTemplate } from './pod.js';
import {
  type JsonObject,
  bool,
  ensureObject,
  forbidden,
  getInteger,
  getObject,
  getString,
  int,
  intOrString,
  invalid,
  isSet,
  kindSchema,
  notSupported,
  obj,
  sameJson,
  setDefault,
  str,
  validateKind,
} from './schema.js';
import { isEmptySelector, labelSelector, selectorMatches } from './selector.js';

/** ValidatePositiveIntOrPercent. */
const intOrPercent = intOrString((value, path, errors) => {
  if (typeof value === 'string' && !isPercent(value)) {
    errors.push(invalid(path, value, "must be an integer or percentage (e.g '5%')"));
  } else if (typeof value === 'number' && value < 0) {
    errors.push(invalid(path, value, 'must be greater than or equal to 0'));
  }
});

/** The number an int-or-percent stands for, as getIntOrPercentValue reads it. */
function intOrPercentValue(value: unknown): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && isPercent(value)) return Number(value.slice(0, -1));
  return undefined;
}

function checkStrategy(strategy: JsonObject, path: string, errors: FieldError[]): void {
  const rollingUpdate = getObject(strategy, 'rollingUpdate');
  if (getString(strategy, 'type') === 'Recreate') {
    if (isSet(strategy, 'rollingUpdate')) {
      errors.push(
        forbidden(
          `${path}.rollingUpdate`,
          "may not be specified when strategy `type` is 'Recreate'",
        ),
      );
    }
    return;
  }
  if (!rollingUpdate) return;
  const maxUnavailable = intOrPercentValue(rollingUpdate.maxUnavailable);
  const maxSurge = intOrPercentValue(rollingUpdate.maxSurge);
  if (maxUnavailable === 0 && maxSurge === 0) {
    errors.push(
      invalid(
        `${path}.rollingUpdate.maxUnavailable`,
        rollingUpdate.maxUnavailable,
        'may not be 0 when `maxSurge` is 0',
      ),
    );
  }
  const unavailable = rollingUpdate.maxUnavailable;
  if (typeof unavailable === 'string' && (intOrPercentValue(unavailable) ?? 0) > 100) {
    errors.push(
      invalid(`${path}.rollingUpdate.maxUnavailable`, unavailable, 'must not be greater than 100%'),
    );
  }
}

function checkSpec(spec: JsonObject, path: string, errors: FieldError[]): void {
  const selector = getObject(spec, 'selector');
  const template = getObject(spec, 'template');
  if (selector && isEmptySelector(selector)) {
    errors.push(invalid(`${path}.selector`, selector, 'empty selector is invalid for deployment'));
  }
  if (selector && template && !isEmptySelector(selector)) {
    const labels = getObject(getObject(template, 'metadata') ?? {}, 'labels') ?? {};
    if (!selectorMatches(selector, labels)) {
      errors.push(
        invalid(
          `${path}.template.metadata.labels`,
          labels,
          '`selector` does not match template `labels`',
        ),
      );
    }
  }
  const podSpec = getObject(template ?? {}, 'spec');
  if (podSpec) {
    const restartPolicy = getString(podSpec, 'restartPolicy');
    if (restartPolicy !== undefined && restartPolicy !== 'Always') {
      errors.push(notSupported(`${path}.template.spec.restartPolicy`, restartPolicy, ['Always']));
    }
    if (isSet(podSpec, 'activeDeadlineSeconds')) {
      errors.push(
        invalid(
          `${path}.template.spec.activeDeadlineSeconds`,
          podSpec.activeDeadlineSeconds,
          'activeDeadlineSeconds in ReplicaSet is not Supported',
        ),
      );
    }
  }
  const deadline = getInteger(spec, 'progressDeadlineSeconds');
  if (deadline !== undefined && deadline <= (getInteger(spec, 'minReadySeconds') ?? 0)) {
    errors.push(
      invalid(`${path}.progressDeadlineSeconds`, deadline, 'must be greater than minReadySeconds'),
    );
  }
}

const deploymentSchema = kindSchema(
  {
    spec: obj(
      {
        replicas: int({ min: 0 }),
        selector: labelSelector,
        template: podTemplate,
        strategy: obj(
          {
            type: str({ enum: ['RollingUpdate', 'Recreate'] }),
            rollingUpdate: obj({ maxSurge: intOrPercent, maxUnavailable: intOrPercent }),
          },
          { check: checkStrategy },
        ),
        minReadySeconds: int({ min: 0 }),
        revisionHistoryLimit: int({ min: 0 }),
        progressDeadlineSeconds: int({ min: 0 }),
        paused: bool({
          check: (value, path, errors) => {
            if (value)
              errors.push(forbidden(path, 'strata does not support pausing Deployments yet'));
          },
        }),
      },
      { required: ['selector', 'template'], check: checkSpec },
    ),
  },
  ['spec'],
);

export const deploymentRules = {
  applyDefaults(object: KubeObject): void {
    const spec = ensureObject(object, 'spec');
    if (!spec) return;
    setDefault(spec, 'replicas', 1);
    setDefault(spec, 'revisionHistoryLimit', 10);
    setDefault(spec, 'progressDeadlineSeconds', 600);
    const strategy = ensureObject(spec, 'strategy');
    if (strategy) {
      setDefault(strategy, 'type', 'RollingUpdate');
      if (strategy.type === 'RollingUpdate') {
        const rollingUpdate = ensureObject(strategy, 'rollingUpdate');
        if (rollingUpdate) {
          setDefault(rollingUpdate, 'maxUnavailable', '25%');
          setDefault(rollingUpdate, 'maxSurge', '25%');
        }
      }
    }
    const podSpec = getObject(getObject(spec, 'template') ?? {}, 'spec');
    if (podSpec) defaultPodSpec(podSpec);
  },
  validate(object: KubeObject, old?: KubeObject): FieldError[] {
    // A template's activeDeadlineSeconds gets upstream's own error (checkSpec), not the pod spec's.
    const errors = validateKind(object, deploymentSchema).filter(
      (e) => !(e.type === 'Forbidden' && e.field === 'spec.template.spec.activeDeadlineSeconds'),
    );
    // apps/v1 made the selector immutable.
    const selector = object.spec?.selector;
    const oldSelector = old?.spec?.selector;
    if (old && !sameJson(selector, oldSelector)) {
      errors.push(invalid('spec.selector', selector, 'field is immutable'));
    }
    return errors;
  },
};
