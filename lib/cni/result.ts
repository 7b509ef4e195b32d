import { CniError, Code } from './errors';
import { compareVersions } from './version';

/** The 1.x result shape; every other version is converted from and to it. */
export interface Interface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
  socketPath?: string;
  pciID?: string;
}
export interface IPConfig {
  interface?: number;
  address: string; // CIDR notation
  gateway?: string;
}
export interface Route {
  dst: string;
  gw?: string;
  mtu?: number;
  advmss?: number;
  priority?: number;
  table?: number;
  scope?: number;
}
export interface DNS {
  nameservers?: string[];
  domain?: string;
  search?: string[];
  options?: string[];
}
export interface Result {
  interfaces?: Interface[];
  ips?: IPConfig[];
  routes?: Route[];
  dns?: DNS;
}

const isV6 = (cidrOrIp: string): boolean => cidrOrIp.includes(':');

function nonEmptyDns(dns: DNS | undefined): DNS | undefined {
  if (!dns) return undefined;
  const has =
    (dns.nameservers?.length ?? 0) + (dns.search?.length ?? 0) + (dns.options?.length ?? 0) > 0 || !!dns.domain;
  return has ? dns : undefined;
}

/** Converts a 1.x result into the JSON of the requested spec version. */
export function toVersion(r: Result, version: string): Record<string, unknown> {
  if (compareVersions(version, '0.3.0') < 0) return toLegacy(r, version);
  const v1 = compareVersions(version, '1.0.0') >= 0;
  const v11 = compareVersions(version, '1.1.0') >= 0;
  const out: Record<string, unknown> = { cniVersion: version };
  if (r.interfaces?.length) {
    out.interfaces = r.interfaces.map((i) => {
      const o: Interface = { name: i.name };
      if (i.mac !== undefined) o.mac = i.mac;
      if (v11 && i.mtu !== undefined) o.mtu = i.mtu;
      if (i.sandbox !== undefined) o.sandbox = i.sandbox;
      if (v11 && i.socketPath !== undefined) o.socketPath = i.socketPath;
      if (v11 && i.pciID !== undefined) o.pciID = i.pciID;
      return o;
    });
  }
  if (r.ips?.length) {
    out.ips = r.ips.map((ip) => {
      const o: Record<string, unknown> = {};
      if (!v1) o.version = isV6(ip.address) ? '6' : '4';
      if (ip.interface !== undefined) o.interface = ip.interface;
      o.address = ip.address;
      if (ip.gateway !== undefined) o.gateway = ip.gateway;
      return o;
    });
  }
  if (r.routes?.length)
    out.routes = r.routes.map((rt) => (v11 ? { ...rt } : { dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) }));
  const dns = nonEmptyDns(r.dns);
  if (dns) out.dns = dns;
  return out;
}

function toLegacy(r: Result, version: string): Record<string, unknown> {
  const out: Record<string, unknown> = { cniVersion: version };
  const v4 = r.ips?.find((ip) => !isV6(ip.address));
  const v6 = r.ips?.find((ip) => isV6(ip.address));
  if (!v4 && !v6) throw new CniError(Code.IncompatibleVersion, `cannot convert: no valid IP addresses`);
  const family = (ip: IPConfig, six: boolean): Record<string, unknown> => {
    const o: Record<string, unknown> = { ip: ip.address };
    if (ip.gateway) o.gateway = ip.gateway;
    const routes = (r.routes ?? [])
      .filter((rt) => isV6(rt.dst) === six)
      .map((rt) => ({ dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) }));
    if (routes.length) o.routes = routes;
    return o;
  };
  if (v4) out.ip4 = family(v4, false);
  if (v6) out.ip6 = family(v6, true);
  out.dns = r.dns ?? {};
  return out;
}

/** Reads a result of any spec version (a prevResult, or a delegate's output) into the 1.x shape. */
export function fromAny(raw: unknown, field = 'prevResult'): Result {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new CniError(Code.DecodingFailure, `${field}: not a JSON object`);
  }
  const o = raw as Record<string, unknown>;
  const r: Result = {};
  if (o.ip4 !== undefined || o.ip6 !== undefined) {
    // 0.1.0 / 0.2.0
    r.ips = [];
    r.routes = [];
    for (const key of ['ip4', 'ip6'] as const) {
      const fam = o[key] as { ip?: string; gateway?: string; routes?: Route[] } | undefined;
      if (!fam) continue;
      if (typeof fam.ip !== 'string') throw new CniError(Code.DecodingFailure, `${field}.${key}.ip: missing`);
      r.ips.push({ address: fam.ip, ...(fam.gateway ? { gateway: fam.gateway } : {}) });
      const routes: unknown = fam.routes ?? [];
      if (!Array.isArray(routes)) throw new CniError(Code.DecodingFailure, `${field}.${key}.routes: not a list`);
      routes.forEach((rt, n) => {
        if (typeof rt?.dst !== 'string')
          throw new CniError(Code.DecodingFailure, `${field}.${key}.routes[${n}].dst: missing`);
        r.routes!.push({ dst: rt.dst, ...(rt.gw ? { gw: rt.gw } : {}) });
      });
    }
    if (o.dns) r.dns = o.dns as DNS;
    return r;
  }
  if (o.interfaces !== undefined) {
    if (!Array.isArray(o.interfaces)) throw new CniError(Code.DecodingFailure, `${field}.interfaces: not a list`);
    r.interfaces = o.interfaces.map((i, n) => {
      if (typeof i?.name !== 'string')
        throw new CniError(Code.DecodingFailure, `${field}.interfaces[${n}].name: missing`);
      return { ...i } as Interface;
    });
  }
  if (o.ips !== undefined) {
    if (!Array.isArray(o.ips)) throw new CniError(Code.DecodingFailure, `${field}.ips: not a list`);
    r.ips = o.ips.map((ip, n) => {
      if (typeof ip?.address !== 'string')
        throw new CniError(Code.DecodingFailure, `${field}.ips[${n}].address: missing`);
      const c: IPConfig = { address: ip.address };
      if (typeof ip.interface === 'number') c.interface = ip.interface;
      if (typeof ip.gateway === 'string') c.gateway = ip.gateway;
      return c;
    });
  }
  if (o.routes !== undefined) {
    if (!Array.isArray(o.routes)) throw new CniError(Code.DecodingFailure, `${field}.routes: not a list`);
    r.routes = o.routes.map((rt, n) => {
      if (typeof rt?.dst !== 'string') throw new CniError(Code.DecodingFailure, `${field}.routes[${n}].dst: missing`);
      return { ...rt } as Route;
    });
  }
  if (o.dns !== undefined) r.dns = o.dns as DNS;
  return r;
}

/** Appends `add` to `prev`, re-indexing `add`'s interface references (chained plugins keep what came before). */
export function appendResult(prev: Result | undefined, add: Result): Result {
  if (!prev) return add;
  const offset = prev.interfaces?.length ?? 0;
  const ifaces = [...(prev.interfaces ?? []), ...(add.interfaces ?? [])];
  const ips = [
    ...(prev.ips ?? []),
    ...(add.ips ?? []).map((ip) => (ip.interface === undefined ? ip : { ...ip, interface: ip.interface + offset })),
  ];
  const routes = [...(prev.routes ?? [])];
  for (const rt of add.routes ?? []) if (!routes.some((p) => p.dst === rt.dst && p.gw === rt.gw)) routes.push(rt);
  const out: Result = { interfaces: ifaces, ips, routes };
  const dns = nonEmptyDns(prev.dns) ?? nonEmptyDns(add.dns);
  if (dns) out.dns = dns;
  return out;
}
