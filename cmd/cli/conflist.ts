import * as path from 'node:path';
import { isObj, Obj } from '../../conf/fields';
import { DEFAULT_DATA_DIR } from '../../ipam/config';
import { readJson } from './files';

/** What the commands for people read from a conflist: the tabby entry, and its IPAM store. */

/** The tabby entry of a conflist (or a single plugin config), with the list's name and version, as a runtime passes it. */
export function loadPluginConfig(file: string): Obj {
  const doc = readJson(file);
  if (!isObj(doc)) throw new Error(`${file}: not a JSON object`);
  const plugins = Array.isArray(doc.plugins) ? doc.plugins : [doc];
  const entry = plugins.find((p) => isObj(p) && p.type === 'tabby');
  if (!isObj(entry)) throw new Error(`${file}: no plugin of type "tabby"`);
  return { ...entry, name: doc.name, cniVersion: doc.cniVersion ?? entry.cniVersion };
}

/** Where the tabby entry's IPAM keeps its reservations: the data directory, and the network's name in it. */
export function ipamStoreOf(file: string): { dataDir: string; network: string } {
  const raw = loadPluginConfig(file);
  const ipam = isObj(raw.ipam) ? raw.ipam : {};
  const dataDir = typeof ipam.dataDir === 'string' && ipam.dataDir !== '' ? ipam.dataDir : DEFAULT_DATA_DIR;
  if (!path.isAbsolute(dataDir)) throw new Error(`${file}: ipam.dataDir must be an absolute path, got "${dataDir}"`);
  if (typeof raw.name !== 'string' || raw.name === '') throw new Error(`${file}: "name" is required`);
  return { dataDir, network: raw.name };
}
