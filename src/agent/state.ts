/**
 * The agent's record of each pod, `nodes/<node>/pods/<uid>/pod.json`, beside
 * the containers' logs (`<container>.log`): the pod's network namespace, its
 * addresses, and each container's process (pid and start time), restart
 * count and last termination. A restarted agent reads it to adopt what still
 * runs instead of starting it twice. Writes go to a temporary file renamed
 * over the record, so a kill at any instant leaves the old or the new one.
 */
import { mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ProcessIdentity } from './processes.js';

/** How a container ended, in the fields of Kubernetes' ContainerStateTerminated. */
export interface Termination {
  exitCode: number;
  signal?: number;
  reason: string;
  message?: string;
  startedAt?: string;
  finishedAt: string;
  containerID?: string;
}

export interface ContainerRecord {
  restartCount: number;
  /** The process while it runs. */
  process?: ProcessIdentity & { startedAt: string };
  /** The current run's end, when it ended and was not restarted (yet). */
  terminated?: Termination;
  /** The previous run's end (containerStatuses[].lastState). */
  lastTerminated?: Termination;
}

export interface PodRecord {
  uid: string;
  namespace: string;
  name: string;
  /** The pod's network namespace, by name (/run/netns/<netns>). */
  netns: string;
  /** The pod's addresses from the CNI result, once the network is set up. */
  podIPs?: string[];
  /** When the agent first acknowledged the pod (status.startTime). */
  startTime: string;
  /** Every container finished for good (the pod is Succeeded or Failed): nothing is started again. */
  terminal?: boolean;
  containers: Record<string, ContainerRecord>;
}

const recordFile = 'pod.json';

export class PodStateStore {
  constructor(readonly podsDir: string) {}

  podDir(uid: string): string {
    return join(this.podsDir, uid);
  }

  logPath(uid: string, container: string): string {
    return join(this.podDir(uid), `${container}.log`);
  }

  /** Creates the pod's directory (for its logs) if needed. */
  ensureDir(uid: string): void {
    mkdirSync(this.podDir(uid), { recursive: true });
  }

  write(record: PodRecord): void {
    this.ensureDir(record.uid);
    const path = join(this.podDir(record.uid), recordFile);
    const temporary = `${path}.tmp`;
    writeFileSync(temporary, JSON.stringify(record, null, 2) + '\n');
    renameSync(temporary, path);
  }

  read(uid: string): PodRecord | undefined {
    try {
      const record = JSON.parse(
        readFileSync(join(this.podDir(uid), recordFile), 'utf8'),
      ) as PodRecord;
      return record.uid === uid ? record : undefined;
    } catch {
      return undefined;
    }
  }

  /** Every pod with a directory; those whose record is unreadable come back with only a uid. */
  readAll(): { uid: string; record: PodRecord | undefined }[] {
    let names: string[];
    try {
      names = readdirSync(this.podsDir);
    } catch {
      return [];
    }
    return names.map((uid) => ({ uid, record: this.read(uid) }));
  }

  /** Forgets the pod: its record and its logs. */
  remove(uid: string): void {
    rmSync(this.podDir(uid), { recursive: true, force: true });
  }
}
