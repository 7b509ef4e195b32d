// Generators of hostile input for the property-based tests (test/unit/hostile-*.test.ts and
// test/integration/hostile.test.ts), and the settings that make their runs reproducible: a fixed seed
// unless TABBY_FC_SEED says otherwise, and each property's own number of runs unless TABBY_FC_RUNS does.
// No vitest here: the arbitraries are plain fast-check.
import fc from 'fast-check';

export const FC_SEED = process.env.TABBY_FC_SEED ? Number(process.env.TABBY_FC_SEED) : 20261201;

/** fast-check's parameters for a property: the seed, and `runs` unless TABBY_FC_RUNS is set. */
export function fcParams(runs: number): { seed: number; numRuns: number; verbose: 1 } {
  const env = Number(process.env.TABBY_FC_RUNS);
  return { seed: FC_SEED, numRuns: Number.isInteger(env) && env > 0 ? env : runs, verbose: 1 };
}

/** A test's timeout for `runs` runs (or TABBY_FC_RUNS) of `msPerRun` each, at least vitest's default. */
export function fcTimeout(runs: number, msPerRun: number): number {
  return Math.max(5_000, fcParams(runs).numRuns * msPerRun);
}

/** The error codes tabby may answer with: the spec's (1-7, 11, 50, 51) and its own (100-106). 999 is a crash. */
export const KNOWN_CODES: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 101, 102, 103, 104, 105, 106];

/** A piece of JSON text put into a document as it is: what JSON.stringify cannot write (1e400, deep nesting). */
export class RawJson {
  constructor(readonly text: string) {}
}

/** JSON.stringify, with each RawJson value written as its text. */
export function toJsonText(v: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(v, (_k, x: unknown) => {
    if (x instanceof RawJson) {
      raws.push(x.text);
      return `\u0001RAW${raws.length - 1}\u0001`;
    }
    return x;
  });
  return text.replace(/"\\u0001RAW(\d+)\\u0001"/g, (_m, i: string) => raws[Number(i)]);
}

/** Strings a parser meets least often: empty, controls, lone surrogates, bidi marks, emoji, long ones. */
export const oddString: fc.Arbitrary<string> = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 8 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\ufeff',
    '\u202e',
    '\u00a0',
    'é',
    'e\u0301',
    '💥',
    '\ud800',
    'İ',
    'x'.repeat(70_000),
    '../..',
    '%s%n',
    '__proto__',
    'constructor',
    'toString',
    'true',
    '1e400',
    '0x10',
  ),
);

/** Numbers at the edges: huge, tiny, negative zero, unsafe integers, fractions. */
export const oddNumber: fc.Arbitrary<number | RawJson> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.constantFrom(0, -0, -1, 0.5, 68, 65535, 65536, 2 ** 31, 2 ** 32, 2 ** 53 + 2, Number.MAX_VALUE, 5e-324),
  fc
    .constantFrom('1e400', '-1e400', '123456789012345678901234567890', '1E+2', '-0', '0.0000001e-400')
    .map((t) => new RawJson(t)),
);

/** Arrays or objects nested deeper than any recursive walk should go (as text: no recursion to build it). */
export const deepNesting: fc.Arbitrary<RawJson> = fc
  .tuple(fc.integer({ min: 20, max: 12_000 }), fc.boolean())
  .map(([n, obj]) => new RawJson(obj ? '{"a":'.repeat(n) + '1' + '}'.repeat(n) : '['.repeat(n) + ']'.repeat(n)));

/** Any JSON value a hostile writer might put where a field is expected. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: oddString },
  { weight: 2, arbitrary: oddNumber },
  { weight: 1, arbitrary: fc.boolean() },
  { weight: 1, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 1, arbitrary: fc.array(oddString, { maxLength: 4 }) },
  { weight: 1, arbitrary: fc.dictionary(oddString, oddString, { maxKeys: 3 }) },
  { weight: 1, arbitrary: deepNesting },
);

/** cniVersion values: every supported one, and near misses. */
export const cniVersion: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('0.1.0', '0.2.0', '0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'),
  fc.constantFrom('', '1.1', '1.1.0 ', '01.0.0', 'v1.0.0', '1.0.0-rc1', '2.0.0', '0.0.0', '99999999999999999999.0.0'),
  fc.constantFrom(1, 1.1, null, true, ['1.0.0']),
  oddString,
);

/** Addresses as a runtime or a person might write them, good and bad. */
export const addressLike: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom('10.244.1.5', '10.244.1.77/24', '10.244.1.0', '10.244.1.1', '10.244.1.255', '10.244.2.5'),
  fc.constantFrom('fd00::5', '::ffff:10.244.1.9', '::10.244.1.9', 'fe80::1%eth0', '1.2.3', '01.2.3.4', '1.2.3.4.5'),
  fc.ipV4(),
  fc.ipV6(),
  hostileValue,
);

/** A JSON list of pool names or CIDRs, as Calico's pool annotations are written, or something close to it. */
const annotationValue: fc.Arbitrary<string> = fc.oneof(
  fc
    .array(fc.oneof(fc.constantFrom('pool-a', 'default-ipv4-ippool', '10.244.0.0/16', 'fd00::/48'), oddString), {
      maxLength: 3,
    })
    .map((l) => JSON.stringify(l)),
  fc.array(addressLike, { maxLength: 3 }).map((l) => JSON.stringify(l)),
  oddString,
);

/** `io.kubernetes.cri.pod-annotations` as containerd passes them, Calico's keys among others. */
export const podAnnotations: fc.Arbitrary<unknown> = fc.oneof(
  fc.dictionary(
    fc.oneof(
      fc.constantFrom(
        'cni.projectcalico.org/ipv4pools',
        'cni.projectcalico.org/ipv6pools',
        'cni.projectcalico.org/ipAddrs',
        'cni.projectcalico.org/ipAddrsNoIpam',
        'io.kubernetes.cri.sandbox-id',
      ),
      oddString,
    ),
    fc.oneof({ weight: 4, arbitrary: annotationValue }, { weight: 1, arbitrary: hostileValue }),
    { maxKeys: 4 },
  ),
  hostileValue,
);

const portMapping: fc.Arbitrary<unknown> = fc.oneof(
  fc.record(
    {
      hostPort: fc.oneof(fc.integer({ min: 1, max: 65535 }), oddNumber, hostileValue),
      containerPort: fc.oneof(fc.integer({ min: 1, max: 65535 }), oddNumber),
      protocol: fc.oneof(fc.constantFrom('tcp', 'udp', 'sctp', 'TCP'), oddString),
      hostIP: addressLike,
    },
    { requiredKeys: [] },
  ),
  hostileValue,
);

/** `runtimeConfig` as a runtime builds it from the capabilities: ips, portMappings, annotations. */
export const runtimeConfig: fc.Arbitrary<unknown> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record(
      {
        ips: fc.oneof(fc.array(addressLike, { maxLength: 3 }), hostileValue),
        portMappings: fc.oneof(fc.array(portMapping, { maxLength: 3 }), hostileValue),
        'io.kubernetes.cri.pod-annotations': podAnnotations,
        ipRanges: fc.oneof(
          fc.array(fc.array(fc.record({ subnet: addressLike }, { requiredKeys: [] }), { maxLength: 2 }), {
            maxLength: 2,
          }),
          hostileValue,
        ),
        bandwidth: hostileValue,
      },
      { requiredKeys: [] },
    ),
  },
  { weight: 1, arbitrary: hostileValue },
);

/** CNI_ARGS: well-formed pairs with tabby's keys and others, and broken text. */
export const cniArgs: fc.Arbitrary<string | undefined> = fc.oneof(
  fc
    .array(
      fc.tuple(
        fc.oneof(
          fc.constantFrom('IgnoreUnknown', 'IP', 'K8S_POD_NAMESPACE', 'K8S_POD_NAME', 'K8S_POD_UID', 'GC_TIME'),
          oddString,
        ),
        fc.oneof(fc.constantFrom('1', 'true', 'TRUE', '0', '10.244.1.5', '10.244.1.5,fd00::5', ''), oddString),
      ),
      { maxLength: 4 },
    )
    .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join(';')),
  oddString,
  fc.constant(undefined),
);

/** An environment value: undefined (not set), or any string (no NUL: the kernel cannot pass one). */
export const envValue = (good: fc.Arbitrary<string>): fc.Arbitrary<string | undefined> =>
  fc.oneof(
    { weight: 4, arbitrary: good },
    { weight: 1, arbitrary: fc.constant(undefined) },
    { weight: 2, arbitrary: oddString.map((s) => s.replace(/\u0000/g, '')) },
  );

export const cniCommand: fc.Arbitrary<string | undefined> = envValue(
  fc.constantFrom('ADD', 'DEL', 'CHECK', 'GC', 'STATUS', 'VERSION', 'add', 'ADD ', 'ADD\n', ''),
);

/** The paths a config may name, kept inside `dir` (or refused: not absolute), never elsewhere on the host. */
export const pathIn = (dir: string): fc.Arbitrary<unknown> =>
  fc.oneof(
    fc.constantFrom(`${dir}/x`, `${dir}/sub/../y`, `${dir}/ é💥`, `${dir}//z`, `${dir}/`),
    oddString.filter((s) => !s.startsWith('/')),
    fc.oneof(oddNumber, fc.boolean(), fc.constant(null), fc.array(oddString, { maxLength: 2 })),
  );

/** One change to a document: set a value at a path, delete what is there, or add an unknown key beside it. */
export type Mutation =
  { path: (string | number)[]; op: 'set'; value: unknown } | { path: (string | number)[]; op: 'delete' };

/** Applies mutations to a deep copy of `doc` (missing objects on the way are created). */
export function mutate<T>(doc: T, mutations: Mutation[]): T {
  const out = structuredClone(doc) as unknown;
  for (const m of mutations) {
    let at = out as Record<string | number, unknown>;
    for (let i = 0; i < m.path.length - 1; i++) {
      const k = m.path[i];
      const next = at[k];
      if (typeof next !== 'object' || next === null || next instanceof RawJson)
        at[k] = typeof m.path[i + 1] === 'number' ? [] : {};
      at = at[k] as Record<string | number, unknown>;
    }
    const last = m.path[m.path.length - 1];
    if (m.op === 'delete') delete at[last];
    else at[last] = m.value;
  }
  return out as T;
}

/** Mutations at the given paths (with values drawn for each) plus unknown keys anywhere along them. */
export function mutations(
  paths: { path: (string | number)[]; value: fc.Arbitrary<unknown> }[],
  maxCount = 4,
): fc.Arbitrary<Mutation[]> {
  const one: fc.Arbitrary<Mutation> = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.oneof(...paths.map((p) => p.value.map((value) => ({ path: p.path, op: 'set' as const, value })))),
    },
    { weight: 2, arbitrary: fc.constantFrom(...paths.map((p) => ({ path: p.path, op: 'delete' as const }))) },
    {
      weight: 1,
      arbitrary: fc
        .tuple(fc.constantFrom(...paths.map((p) => p.path)), oddString, hostileValue)
        .map(([p, k, value]) => ({ path: [...p.slice(0, -1), k], op: 'set' as const, value })),
    },
  );
  return fc.array(one, { minLength: 1, maxLength: maxCount });
}

/** The tabby plugin entry every config mutation starts from: valid, in `dir`. */
export function baseConfig(dir: string): Record<string, any> {
  return {
    cniVersion: '1.1.0',
    name: 'tabbynet',
    type: 'tabby',
    mtu: 1450,
    logFile: `${dir}/tabby.log`,
    logLevel: 'info',
    ipam: {
      type: 'tabby-ipam',
      ranges: [[{ subnet: '10.244.1.0/24' }]],
      routes: [{ dst: '0.0.0.0/0' }],
      dataDir: `${dir}/data`,
    },
  };
}

/**
 * Mutations of a plugin config's every field: types, sizes, nesting, unknown keys, huge numbers, odd
 * Unicode, wrong cniVersion, runtimeConfig and prevResult. Paths are kept in `dir`.
 */
export function configMutations(dir: string): fc.Arbitrary<Mutation[]> {
  const v = hostileValue;
  return mutations([
    { path: ['cniVersion'], value: cniVersion },
    { path: ['name'], value: fc.oneof(fc.constantFrom('net-1', 'a.b_c', '-x', 'a b'), v) },
    { path: ['type'], value: v },
    { path: ['mtu'], value: fc.oneof(oddNumber, fc.integer({ min: 0, max: 70_000 }), v) },
    { path: ['logFile'], value: pathIn(dir) },
    { path: ['logLevel'], value: fc.oneof(fc.constantFrom('debug', 'error', 'warn', 'INFO'), v) },
    { path: ['dns'], value: fc.oneof(fc.record({ nameservers: fc.array(addressLike, { maxLength: 2 }) }), v) },
    { path: ['prevResult'], value: fc.oneof(prevResult, v) },
    { path: ['runtimeConfig'], value: runtimeConfig },
    { path: ['runtimeConfig', 'ips'], value: fc.array(addressLike, { maxLength: 3 }) },
    { path: ['runtimeConfig', 'io.kubernetes.cri.pod-annotations'], value: podAnnotations },
    { path: ['args'], value: v },
    { path: ['args', 'cni', 'ips'], value: fc.oneof(fc.array(addressLike, { maxLength: 3 }), v) },
    { path: ['args', 'cni'], value: v },
    { path: ['capabilities'], value: v },
    { path: ['cni.dev/valid-attachments'], value: v },
    { path: ['natBackend'], value: v },
    { path: ['nodeName'], value: v },
    {
      path: ['ipAutodetectionMethod'],
      value: fc.oneof(fc.constantFrom('first-found', 'cidrs=10.0.0.0/8', 'can-reach=x'), v),
    },
    { path: ['datastore'], value: fc.oneof(oddString, oddNumber, fc.boolean(), fc.array(oddString, { maxLength: 2 })) },
    { path: ['ipam'], value: v },
    { path: ['ipam', 'type'], value: fc.oneof(fc.constantFrom('host-local', '../x', 'no-such-ipam', ''), v) },
    { path: ['ipam', 'dataDir'], value: pathIn(dir) },
    { path: ['ipam', 'resolvConf'], value: pathIn(dir) },
    { path: ['ipam', 'ranges'], value: v },
    { path: ['ipam', 'ranges', 0], value: v },
    { path: ['ipam', 'ranges', 0, 0], value: v },
    {
      path: ['ipam', 'ranges', 0, 0, 'subnet'],
      value: fc.oneof(addressLike, fc.constantFrom('10.244.1.0/33', '10.244.1.0/31', '::/0', '10.244.1.7/24')),
    },
    { path: ['ipam', 'ranges', 0, 0, 'rangeStart'], value: addressLike },
    { path: ['ipam', 'ranges', 0, 0, 'rangeEnd'], value: addressLike },
    { path: ['ipam', 'ranges', 0, 0, 'gateway'], value: addressLike },
    { path: ['ipam', 'ranges', 1], value: fc.constant([{ subnet: 'fd00:1::/120' }]) },
    { path: ['ipam', 'subnet'], value: addressLike },
    { path: ['ipam', 'routes'], value: v },
    { path: ['ipam', 'routes', 0, 'dst'], value: addressLike },
    { path: ['ipam', 'routes', 0, 'gw'], value: addressLike },
  ]);
}

/** prevResult shapes of every version, with holes. */
const prevResult: fc.Arbitrary<unknown> = fc.oneof(
  fc.record(
    {
      cniVersion: cniVersion,
      interfaces: fc.oneof(
        fc.array(fc.oneof(fc.record({ name: oddString }), hostileValue), { maxLength: 2 }),
        hostileValue,
      ),
      ips: fc.oneof(
        fc.array(fc.oneof(fc.record({ address: addressLike, interface: oddNumber }), hostileValue), { maxLength: 2 }),
        hostileValue,
      ),
      routes: fc.oneof(
        fc.array(fc.oneof(fc.record({ dst: addressLike }), hostileValue), { maxLength: 2 }),
        hostileValue,
      ),
      dns: hostileValue,
    },
    { requiredKeys: [] },
  ),
  fc.record(
    {
      cniVersion: cniVersion,
      ip4: fc.oneof(
        fc.record({ ip: addressLike, gateway: addressLike, routes: hostileValue }, { requiredKeys: [] }),
        hostileValue,
      ),
      ip6: hostileValue,
      dns: hostileValue,
    },
    { requiredKeys: [] },
  ),
);

/** Text-level damage to a JSON document: cut short, a BOM in front, a duplicate key, trailing junk. */
export const textDamage: fc.Arbitrary<(t: string) => string> = fc.oneof(
  { weight: 8, arbitrary: fc.constant((t: string) => t) },
  { weight: 1, arbitrary: fc.nat().map((n) => (t: string) => t.slice(0, n % (t.length + 1))) },
  { weight: 1, arbitrary: fc.constant((t: string) => '\ufeff' + t) },
  { weight: 1, arbitrary: fc.constant((t: string) => t.replace('{', '{"cniVersion":"0.1.0",')) },
  { weight: 1, arbitrary: oddString.map((s) => (t: string) => t + s) },
);

const ANNOTATIONS = 'io.kubernetes.cri.pod-annotations';
const CALICO_KEYS = [
  'cni.projectcalico.org/ipv4pools',
  'cni.projectcalico.org/ipv6pools',
  'cni.projectcalico.org/ipAddrs',
];

/** Mutations of runtimeConfig and the CNI arguments alone: the rest of the config stays valid. */
export const runtimeMutations: fc.Arbitrary<Mutation[]> = mutations(
  [
    { path: ['runtimeConfig'], value: runtimeConfig },
    { path: ['runtimeConfig', 'ips'], value: fc.oneof(fc.array(addressLike, { maxLength: 3 }), hostileValue) },
    { path: ['runtimeConfig', 'portMappings'], value: fc.oneof(fc.array(portMapping, { maxLength: 3 }), hostileValue) },
    { path: ['runtimeConfig', ANNOTATIONS], value: podAnnotations },
    ...CALICO_KEYS.map((k) => ({
      path: ['runtimeConfig', ANNOTATIONS, k],
      value: fc.oneof(annotationValue, hostileValue),
    })),
    { path: ['args', 'cni', 'ips'], value: fc.oneof(fc.array(addressLike, { maxLength: 3 }), hostileValue) },
  ],
  3,
);

/** A whole stdin: a mutated config, its text sometimes damaged, or something that is no config at all. */
export function configStdin(dir: string): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 4, arbitrary: runtimeMutations.map((ms) => toJsonText(mutate(baseConfig(dir), ms))) },
    {
      weight: 10,
      arbitrary: fc
        .tuple(configMutations(dir), textDamage)
        .map(([ms, damage]) => damage(toJsonText(mutate(baseConfig(dir), ms)))),
    },
    { weight: 1, arbitrary: hostileValue.map((v) => toJsonText(v)) },
    { weight: 1, arbitrary: oddString },
  );
}

/** A valid cluster (Calico resources) every cluster-file mutation starts from. */
export function baseClusterDocs(): Record<string, any>[] {
  const meta = (name: string, extra: object = {}) => ({ name, ...extra });
  return [
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPPool',
      metadata: meta('pool-a'),
      spec: { cidr: '10.244.0.0/16', blockSize: 24, vxlanMode: 'CrossSubnet', natOutgoing: true },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: meta('node-a', { labels: { zone: 'a' } }),
      spec: { bgp: { ipv4Address: '192.168.10.11/24' } },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'Node',
      metadata: meta('node-b'),
      spec: { bgp: { ipv4Address: '192.168.10.12/24' }, ipv4VXLANTunnelAddr: '10.244.2.1' },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'BlockAffinity',
      metadata: meta('node-a-10-244-1-0-24'),
      spec: { node: 'node-a', cidr: '10.244.1.0/24' },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'BlockAffinity',
      metadata: meta('node-b-10-244-2-0-24'),
      spec: { node: 'node-b', cidr: '10.244.2.0/24' },
    },
    {
      apiVersion: 'projectcalico.org/v3',
      kind: 'IPAMConfiguration',
      metadata: meta('default'),
      spec: { maxBlocksPerHost: 4 },
    },
  ];
}

const clusterPaths = (i: number): { path: (string | number)[]; value: fc.Arbitrary<unknown> }[] => {
  const v = hostileValue;
  const cidrLike = fc.oneof(
    fc.constantFrom('10.244.0.0/16', '10.244.3.0/24', '10.244.1.0/25', '169.254.0.0/16', 'fd00::/48', '10.244.1.1/24'),
    addressLike,
  );
  return [
    { path: [i], value: v },
    { path: [i, 'apiVersion'], value: fc.oneof(fc.constantFrom('projectcalico.org/v1', 'v1', ''), v) },
    {
      path: [i, 'kind'],
      value: fc.oneof(fc.constantFrom('IPPool', 'Node', 'BlockAffinity', 'IPPoolList', 'IPAMConfig', 'Pod'), v),
    },
    { path: [i, 'items'], value: fc.oneof(fc.constant([]), fc.array(v, { maxLength: 2 }), v) },
    { path: [i, 'metadata'], value: v },
    {
      path: [i, 'metadata', 'name'],
      value: fc.oneof(fc.constantFrom('pool-a', 'node-a', 'default', 'x'.repeat(300)), v),
    },
    {
      path: [i, 'metadata', 'labels'],
      value: fc.oneof(fc.dictionary(oddString, fc.oneof(oddString, v), { maxKeys: 3 }), v),
    },
    { path: [i, 'spec'], value: v },
    { path: [i, 'spec', 'cidr'], value: cidrLike },
    { path: [i, 'spec', 'blockSize'], value: fc.oneof(fc.integer({ min: 0, max: 130 }), oddNumber, v) },
    { path: [i, 'spec', 'vxlanMode'], value: fc.oneof(fc.constantFrom('Always', 'Never', 'CrossSubnet', 'always'), v) },
    { path: [i, 'spec', 'ipipMode'], value: fc.oneof(fc.constantFrom('Always', 'Never', 'CrossSubnet'), v) },
    { path: [i, 'spec', 'natOutgoing'], value: fc.oneof(fc.boolean(), v) },
    { path: [i, 'spec', 'disabled'], value: fc.oneof(fc.boolean(), v) },
    {
      path: [i, 'spec', 'nodeSelector'],
      value: fc.oneof(fc.constantFrom('all()', "zone == 'a'", 'has(zone)', '!', "zone in {'a'"), v),
    },
    { path: [i, 'spec', 'allowedUses'], value: fc.oneof(fc.constantFrom(['Workload'], ['Tunnel'], []), v) },
    { path: [i, 'spec', 'node'], value: fc.oneof(fc.constantFrom('node-a', 'node-b', 'node-z'), v) },
    { path: [i, 'spec', 'bgp'], value: v },
    { path: [i, 'spec', 'bgp', 'ipv4Address'], value: fc.oneof(cidrLike, addressLike) },
    { path: [i, 'spec', 'bgp', 'ipv4IPIPTunnelAddr'], value: addressLike },
    { path: [i, 'spec', 'ipv4VXLANTunnelAddr'], value: addressLike },
    {
      path: [i, 'spec', 'vxlanTunnelMACAddr'],
      value: fc.oneof(
        fc.constantFrom('66:00:00:00:00:01', '66:00:00:00:00'),
        fc.mixedCase(fc.constant('aa:bb:cc:dd:ee:ff')),
        v,
      ),
    },
    { path: [i, 'spec', 'maxBlocksPerHost'], value: fc.oneof(oddNumber, v) },
  ];
};

/** Mutations of the base cluster's documents (a document, its fields, unknown keys, whole documents swapped). */
export const clusterMutations: fc.Arbitrary<Mutation[]> = mutations(
  baseClusterDocs().flatMap((_, i) => clusterPaths(i)),
  5,
);

/** YAML that parsers find hard: alias bombs, deep flow nesting, tags, directives, tabs, merge keys. */
export const hostileYaml: fc.Arbitrary<string> = fc.oneof(
  fc.integer({ min: 2, max: 12 }).map((n) => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < n; i++)
      lines.push(
        `a${i}: &a${i} [${Array(10)
          .fill(`*a${i - 1}`)
          .join(', ')}]`,
      );
    return lines.join('\n') + '\n';
  }),
  fc.integer({ min: 10, max: 4_000 }).map((n) => `kind: IPPool\nspec: ${'['.repeat(n)}${']'.repeat(n)}\n`),
  fc
    .integer({ min: 10, max: 1_500 })
    .map((n) => `kind: IPPool\nspec:\n${Array.from({ length: n }, (_, i) => `${' '.repeat(i + 1)}- `).join('\n')}x\n`),
  fc.constantFrom(
    'kind: !!binary aGVsbG8=\n',
    'kind: !custom IPPool\n',
    '%YAML 1.1\n---\nkind: IPPool\n',
    '%TAG ! tag:x,2000:\n---\nkind: !foo IPPool\n',
    'kind:\tIPPool\n',
    '<<: {kind: IPPool}\napiVersion: projectcalico.org/v3\n',
    'a: 1\na: 2\n',
    '? [complex, key]\n: value\n',
    'kind: IPPool\n...\n...\n',
    '---\n---\n---\n',
    '- - - - - -\n',
    '"\\ud800": x\n',
    'kind: "\\x00"\n',
    '{',
    ']',
  ),
);

/** A cluster file's text: mutated documents as YAML or JSON, sometimes damaged, or hostile YAML. */
export function clusterText(stringifyYaml: (doc: unknown) => string): fc.Arbitrary<string> {
  const docs = clusterMutations.map((ms) => mutate(baseClusterDocs(), ms));
  return fc.oneof(
    {
      weight: 6,
      arbitrary: fc.tuple(docs, fc.constantFrom('yaml', 'json', 'jsonlist', 'list')).map(([d, how]) => {
        if (how === 'json') return toJsonText(d);
        if (how === 'jsonlist') return toJsonText({ apiVersion: 'projectcalico.org/v3', kind: 'IPPoolList', items: d });
        // a document too deep for the YAML writer: the file is JSON (which is YAML)
        try {
          const plain = JSON.parse(toJsonText(d)) as unknown[];
          if (how === 'list') return stringifyYaml({ apiVersion: 'projectcalico.org/v3', kind: 'List', items: plain });
          return plain.map((x) => stringifyYaml(x)).join('---\n');
        } catch {
          return toJsonText(d);
        }
      }),
    },
    {
      weight: 2,
      arbitrary: fc
        .tuple(docs, hostileYaml)
        .map(([d, y]) => [...d.slice(0, 2).map((x) => JSON.stringify(x)), y].join('\n---\n')),
    },
    { weight: 1, arbitrary: oddString },
  );
}
