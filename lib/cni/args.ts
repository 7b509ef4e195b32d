import { CniError, Code } from './errors';

/** Keys tabby understands in CNI_ARGS; anything else needs IgnoreUnknown. */
const KNOWN_KEYS = new Set([
  'IgnoreUnknown',
  'IP',
  'K8S_POD_NAMESPACE',
  'K8S_POD_NAME',
  'K8S_POD_INFRA_CONTAINER_ID',
  'K8S_POD_UID',
]);

export interface CniArgs {
  readonly values: ReadonlyMap<string, string>;
  readonly ignoreUnknown: boolean;
  get(key: string): string | undefined;
}

/** Parses `K=V;K2=V2` as libcni's types.LoadArgs does: exactly one `=` per pair. */
export function parseCniArgs(raw: string | undefined): CniArgs {
  const values = new Map<string, string>();
  for (const pair of (raw ?? '').split(';')) {
    if (pair === '') continue;
    const kv = pair.split('=');
    if (kv.length !== 2) throw new CniError(Code.InvalidEnvironment, `CNI_ARGS: invalid pair "${pair}"`);
    const [k, v] = kv;
    if (k === '') throw new CniError(Code.InvalidEnvironment, `CNI_ARGS: empty key in "${pair}"`);
    values.set(k, v);
  }
  const ig = values.get('IgnoreUnknown');
  const ignoreUnknown = ig !== undefined && /^(1|true)$/i.test(ig);
  if (!ignoreUnknown) {
    const unknown = [...values.keys()].filter((k) => !KNOWN_KEYS.has(k));
    if (unknown.length > 0) {
      throw new CniError(
        Code.InvalidEnvironment,
        `CNI_ARGS: unknown args [${unknown.join(', ')}] (set IgnoreUnknown=1 to allow them)`,
      );
    }
  }
  return { values, ignoreUnknown, get: (k) => values.get(k) };
}
