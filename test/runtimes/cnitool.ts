import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { REPO } from '../helpers/cni';
import { run } from '../helpers/netns';
import { requireTools, shown } from './helpers';

/**
 * The upstream `cnitool` (containernetworking/cni v1.2.0, spec 1.1.0), built once per machine from the
 * source tarball and build script in the workplace's shared/tools/cnitool. That directory is not in the
 * repository (third-party code is not vendored): CI clones the repository with a copy of shared/ beside
 * it, so it is `../shared/tools/cnitool` there; a developer's worktree may sit deeper, so every ancestor
 * of the repository is tried, nearest first. $TABBY_CNITOOL_DIR overrides the search. Missing means a
 * loud failure, never a skip.
 */

const BUILD_SCRIPT = 'build.sh';
const TARBALL = 'cni-v1.2.0.tar.gz';

/** Where the build script and the tarball are, or an error naming every place looked at. */
export function cnitoolSourceDir(): string {
  const holds = (d: string): boolean =>
    fs.existsSync(path.join(d, BUILD_SCRIPT)) && fs.existsSync(path.join(d, TARBALL));
  const fromEnv = process.env.TABBY_CNITOOL_DIR;
  if (fromEnv) {
    if (holds(fromEnv)) return fromEnv;
    throw new Error(`TABBY_CNITOOL_DIR=${fromEnv} does not hold ${BUILD_SCRIPT} and ${TARBALL}`);
  }
  const tried: string[] = [];
  for (let d = path.dirname(path.resolve(REPO)); ; d = path.dirname(d)) {
    const candidate = path.join(d, 'shared/tools/cnitool');
    tried.push(candidate);
    if (holds(candidate)) return candidate;
    if (d === path.dirname(d)) break;
  }
  throw new Error(
    `the upstream cnitool source (${BUILD_SCRIPT} + ${TARBALL}) is not in any of ${tried.join(', ')}: ` +
      'CI lays shared/ beside the clone; elsewhere set TABBY_CNITOOL_DIR to the directory holding them',
  );
}

/**
 * Builds cnitool (unless this exact source was built before) and returns the binary's path. The cache
 * directory is named after a hash of the tarball and the build script, and filled by building into a
 * scratch directory that is renamed into place, so an interrupted build is never taken for a finished one.
 */
export async function buildCnitool(): Promise<string> {
  // The build script apt-gets the first two when missing, but not semver (libcni needs it, and Go 1.19
  // in GOPATH mode finds semver/v3 in Debian's unversioned directory); failing here names test/setup.sh.
  requireTools({
    '/usr/bin/go': 'golang-go',
    '/usr/share/gocode/src/github.com/spf13/cobra/command.go': 'golang-github-spf13-cobra-dev',
    '/usr/share/gocode/src/github.com/Masterminds/semver/version.go': 'golang-github-masterminds-semver-dev',
  });
  const src = cnitoolSourceDir();
  const hash = createHash('sha256');
  for (const f of [BUILD_SCRIPT, TARBALL]) hash.update(fs.readFileSync(path.join(src, f)));
  const cache = path.join(os.tmpdir(), `tabby-cnitool-${hash.digest('hex').slice(0, 16)}`);
  const bin = path.join(cache, 'cnitool');
  if (fs.existsSync(bin)) return bin;

  const scratch = `${cache}.building-${randomBytes(4).toString('hex')}`;
  try {
    const r = await run('/bin/bash', [path.join(src, BUILD_SCRIPT), scratch], {
      env: { PATH: process.env.PATH, HOME: os.tmpdir() },
      timeoutMs: 300_000,
    });
    const built = path.join(scratch, 'cnitool');
    if (r.code !== 0 || r.stdout.trim() !== built || !fs.existsSync(built)) {
      throw new Error(`building cnitool with ${path.join(src, BUILD_SCRIPT)} failed:\n${shown(r)}`);
    }
    try {
      fs.renameSync(scratch, cache);
    } catch (e) {
      // Another run finished first: its binary is as good as ours.
      if (!fs.existsSync(bin)) throw e;
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  return bin;
}

/**
 * The container ID cnitool gives an attachment: "cnitool-" and the first 10 bytes of the SHA-512 of
 * the namespace path, in hex (cnitool/cnitool.go).
 */
export function cnitoolContainerId(netnsPath: string): string {
  return `cnitool-${createHash('sha512').update(netnsPath).digest('hex').slice(0, 20)}`;
}
