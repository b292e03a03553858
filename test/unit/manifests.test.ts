/**
 * deploy/kubernetes/*.yaml against the Kubernetes API schema (kubernetes-models, from
 * npm: OpenAPI schemas compiled into validators, nothing fetched at run time), and in
 * step with what test/e2e/runc.test.ts proves: the same added capabilities, /proc/sys
 * read-only, read-only root, no privilege escalation. Dockerfile.example's and the
 * manifests' STASIS_* names must be real options.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Service } from 'kubernetes-models/v1/Service';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { describe, expect, test } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { OPTIONS } from '../../src/config.js';
import { CHECKPOINT_CAPS } from '../helpers/oci.js';
import { ROOT } from '../helpers/stasis.js';
import { parseDuration } from '../../src/duration.js';

const DEPLOY = join(ROOT, 'deploy/kubernetes');
const OPTION_NAMES = new Set<string>(OPTIONS.map((option) => option.env));

interface Manifest {
  readonly file: string;
  readonly doc: { apiVersion?: string; kind?: string; [key: string]: unknown };
}

function manifests(): Manifest[] {
  return readdirSync(DEPLOY)
    .filter((name) => /\.ya?ml$/.test(name))
    .flatMap((file) =>
      parseAllDocuments(readFileSync(join(DEPLOY, file), 'utf8')).map((document) => {
        if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map((e) => e.message).join('; ')}`);
        return { file, doc: document.toJS() as Manifest['doc'] };
      }),
    );
}

const MODELS: Record<string, (doc: Manifest['doc']) => { validate(): void }> = {
  'v1/Service': (doc) => new Service(doc as ConstructorParameters<typeof Service>[0]),
  'apps/v1/StatefulSet': (doc) => new StatefulSet(doc as ConstructorParameters<typeof StatefulSet>[0]),
};

function statefulSet(file = 'statefulset.yaml'): StatefulSet {
  const found = manifests().find((manifest) => manifest.file === file && manifest.doc.kind === 'StatefulSet');
  if (!found) throw new Error(`no StatefulSet in deploy/kubernetes/${file}`);
  return new StatefulSet(found.doc as ConstructorParameters<typeof StatefulSet>[0]);
}

describe('deploy/kubernetes', () => {
  test('every document is valid against the Kubernetes API schema', () => {
    const all = manifests();
    expect(all.map(({ doc }) => `${doc.apiVersion}/${doc.kind}`).sort()).toEqual(['apps/v1/StatefulSet', 'apps/v1/StatefulSet', 'v1/Service']);
    for (const { file, doc } of all) {
      const model = MODELS[`${doc.apiVersion}/${doc.kind}`];
      expect(model, `${file}: no schema for ${doc.apiVersion}/${doc.kind}`).toBeDefined();
      expect(() => model?.(doc).validate(), `${file} ${doc.kind}`).not.toThrow();
    }
  });

  test('the schema check rejects a broken manifest (it really validates)', () => {
    const broken = { apiVersion: 'apps/v1', kind: 'StatefulSet', metadata: { name: 'x' }, spec: { serviceName: 'x', selector: {}, template: { spec: { containers: [{ name: 'a', securityContext: { capabilities: { add: 'SYS_PTRACE' } } }] } } } };
    expect(() => new StatefulSet(broken as unknown as ConstructorParameters<typeof StatefulSet>[0]).validate()).toThrow(/capabilities\/add must be array/);
  });

  test('the securityContext is exactly what the runc test runs with: not privileged', () => {
    const container = statefulSet().spec?.template.spec?.containers[0];
    const context = container?.securityContext;
    expect(context?.privileged).toBe(false);
    expect(context?.capabilities?.add).toEqual(CHECKPOINT_CAPS.map((cap) => cap.replace(/^CAP_/, '')));
    expect(context?.capabilities?.add).not.toContain('SYS_ADMIN');
    expect(context?.allowPrivilegeEscalation).toBe(false); // runc: noNewPrivileges
    expect(context?.readOnlyRootFilesystem).toBe(true); // runc: root.readonly
    expect(context?.procMount ?? 'Default').toBe('Default'); // runc: /proc/sys in readonlyPaths
    expect(statefulSet().spec?.template.spec?.securityContext?.fsGroup).toBeUndefined(); // would make STASIS_DIR group-writable
  });

  test('the non-root variant is what the runc test runs as uid 1000: same capabilities, privilege escalation allowed (file capabilities)', () => {
    const set = statefulSet('statefulset-nonroot.yaml');
    const context = set.spec?.template.spec?.containers[0]?.securityContext;
    expect(context).toMatchObject({ runAsUser: 1000, runAsGroup: 1000, runAsNonRoot: true, privileged: false, allowPrivilegeEscalation: true, readOnlyRootFilesystem: true });
    expect(context?.capabilities?.add).toEqual(CHECKPOINT_CAPS.map((cap) => cap.replace(/^CAP_/, '')));
    // the single executable unpacks its addon into /tmp: uid 1000 cannot write /dev
    expect(set.spec?.template.spec?.containers[0]?.volumeMounts?.map((mount) => mount.mountPath)).toContain('/tmp');
    // only the volume's root is changed, never STASIS_DIR inside it
    expect(set.spec?.template.spec?.securityContext?.fsGroupChangePolicy).toBe('OnRootMismatch');
  });

  test('a PVC holds STASIS_DIR, the preStop hook dumps, and the grace period outlasts the dump', () => {
    const set = statefulSet();
    const container = set.spec?.template.spec?.containers[0];
    const env = new Map((container?.env ?? []).map((variable) => [variable.name, variable.value]));
    const claim = set.spec?.volumeClaimTemplates?.[0]?.metadata?.name;
    const mount = container?.volumeMounts?.find((volume) => volume.name === claim);
    expect(mount?.mountPath).toBeDefined();
    expect(String(env.get('STASIS_DIR')).startsWith(`${mount?.mountPath}/`)).toBe(true);
    const preStop = container?.lifecycle?.preStop?.exec?.command ?? [];
    expect(preStop.slice(0, 2)).toEqual(['/usr/local/bin/stasis', 'checkpoint']);
    const timeout = Number(/^(\d+)s$/.exec(preStop[preStop.indexOf('--timeout') + 1] ?? '')?.[1]);
    expect(set.spec?.template.spec?.terminationGracePeriodSeconds).toBeGreaterThan(timeout);
    // a hung criu is killed before the kubelet's SIGKILL, so the SIGTERM fallback still runs
    expect(parseDuration(String(env.get('STASIS_CRIU_TIMEOUT')))).toBeLessThan((set.spec?.template.spec?.terminationGracePeriodSeconds ?? 0) * 1000);
    for (const name of env.keys()) expect(OPTION_NAMES.has(name), `${name} is not a stasis option`).toBe(true);
  });
});

describe('Dockerfile.example', () => {
  const text = readFileSync(join(ROOT, 'Dockerfile.example'), 'utf8');

  test('ENTRYPOINT is stasis, criu comes from Debian 13, checkpoints live in a VOLUME', () => {
    expect(text).toMatch(/^ENTRYPOINT \["\/usr\/local\/bin\/stasis", "--"\]$/m);
    expect(text).toMatch(/^FROM debian:13-slim$/m);
    expect(text).toMatch(/apt-get install -y --no-install-recommends criu libatomic1/);
    expect(text).toMatch(/^VOLUME \["\/var\/lib\/stasis"\]$/m);
  });

  test('every STASIS_* default it sets is a real option', () => {
    const names = [...text.matchAll(/\b(STASIS_[A-Z_]+)=/g)].map((match) => match[1] as string);
    expect(names.length).toBeGreaterThan(3);
    for (const name of names) expect(OPTION_NAMES.has(name), `${name} is not a stasis option`).toBe(true);
  });
});
