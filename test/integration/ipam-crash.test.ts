import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { expectCniError, expectResult, expectSilentSuccess, show, TestNode } from '../helpers/cni';
import { delay, Killable, randInt, reservationMap, startTabby, waitForNoProcessesIn } from '../helpers/ipam';
import { IP, nsPath, routes, tabbyVeths, useSandbox } from '../helpers/netns';
import { lockName } from '../../ipam/lock';

// tabby processes killed with SIGKILL: the lock they held is freed by the kernel at once, and whatever
// they left half-done (a reservation without a veth, a veth without a reservation, ...) is reclaimed by GC.
//
// The stated bound: a dead holder blocks nobody (waiters are woken when its socket closes). These tests
// run the operations that follow a kill with TABBY_IPAM_LOCK_TIMEOUT_MS=2000, so a lock that outlived
// its holder (the old proper-lockfile kept it 5 s) would fail them with code 11.
const AFTER_KILL = { TABBY_IPAM_LOCK_TIMEOUT_MS: '2000' };

const sb = useSandbox();

/**
 * A process that binds the IPAM lock of `dir` inside `node` the way tabby does and keeps it until
 * killed; it prints "held" once bound and "waiter" for each process that comes to wait.
 */
function holdLock(node: string, dir: string) {
  const script = `
    const net = require('node:net');
    const srv = net.createServer((s) => { s.on('error', () => {}); process.stdout.write('waiter\\n'); });
    srv.listen({ path: '\\0' + process.argv[1], exclusive: true }, () => process.stdout.write('held\\n'));`;
  const child = spawn(IP, ['netns', 'exec', node, process.execPath, '-e', script, lockName(dir).slice(1)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const said = (word: string) =>
    new Promise<void>((resolve, reject) => {
      const check = () => out.split('\n').includes(word) && resolve();
      child.stdout.on('data', (b: Buffer) => {
        out += b.toString();
        check();
      });
      void exited.then(() => reject(new Error(`lock holder exited before saying ${word}`)));
      check();
    });
  return { child, said, exited };
}

describe('a lock holder killed with SIGKILL', () => {
  it('blocks nobody: a waiting ADD goes on as soon as the holder dies', async () => {
    const node = await TestNode.create(sb);
    fs.mkdirSync(node.ipamDir, { recursive: true });
    const holder = holdLock(node.name, node.ipamDir);
    try {
      await holder.said('held');
      // while the lock is held (by a live process), a short lock timeout runs out: code 11
      expectCniError(
        await node.add(await sb.netns(), 'early', { env: { TABBY_IPAM_LOCK_TIMEOUT_MS: '300' } }),
        11,
        /cannot lock /,
      );
      // an ADD with the default (60 s) timeout waits; the holder is killed while it does
      const pod = await sb.netns();
      const waiting = node.add(pod, 'waits');
      await holder.said('waiter');
      holder.child.kill('SIGKILL');
      const r = expectResult(await waiting);
      expect(r.ips[0].address).toBe('10.244.1.2/32');
      expectSilentSuccess(await node.del(pod, 'waits', { env: AFTER_KILL }));
      expect(node.reservations()).toEqual([]);
    } finally {
      holder.child.kill('SIGKILL');
      await holder.exited;
    }
  });
});

describe('tabby killed at random moments of ADD and DEL, many times', () => {
  it('later operations are not blocked, and GC reclaims every reservation and host veth left behind', async () => {
    const ROUNDS = 10;
    const PER_ROUND = 6;
    const node = await TestNode.create(sb);
    const pods: string[] = [];
    const newPod = async () => {
      const p = await sb.netns();
      pods.push(p);
      return p;
    };
    const run = (command: string, pod: string, cid: string): Killable =>
      startTabby(node.name, node.env(command, cid, nsPath(pod)), node.conf());

    // how long an ADD takes here, so that kills land all over it (and sometimes after it)
    const calPod = await newPod();
    const t0 = Date.now();
    expect((await run('ADD', calPod, 'calibrate').done).code).toBe(0);
    const addMs = Date.now() - t0;
    expectSilentSuccess(await node.del(calPod, 'calibrate'));

    const attached: { pod: string; cid: string }[] = []; // everything an ADD was started for, not yet DEL'd
    const probes: { pod: string; cid: string; ip: string; veth: string }[] = [];
    let kills = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const victims: Killable[] = [];
      for (let v = 0; v < PER_ROUND; v++) {
        if (attached.length === 0 || Math.random() < 0.55) {
          const a = { pod: await newPod(), cid: `crash-${round}-${v}` };
          attached.push(a);
          victims.push(run('ADD', a.pod, a.cid));
        } else {
          const a = attached.splice(randInt(attached.length), 1)[0];
          victims.push(run('DEL', a.pod, a.cid));
        }
      }
      await Promise.all(
        victims.map(async (k) => {
          await delay(randInt(Math.ceil(addMs * 1.5)));
          if (k.child.exitCode === null && k.child.signalCode === null && k.child.kill('SIGKILL')) kills++;
          await k.done;
        }),
      );
      // right after the kills, an ADD goes through: nothing a dead process held is in the way
      const pod = await newPod();
      const cid = `probe-${round}`;
      const r = await node.add(pod, cid, { env: AFTER_KILL });
      const res = expectResult(r);
      const ip = res.ips[0].address.split('/')[0];
      expect(reservationMap(node.ipamDir)[ip], show(r)).toBe(`${cid}\r\neth0`);
      probes.push({ pod, cid, ip, veth: res.interfaces[0].name });
    }
    expect(kills).toBeGreaterThan((ROUNDS * PER_ROUND) / 3);

    // the `ip` children of killed processes run to completion on their own: wait for them
    await waitForNoProcessesIn([node.name, ...pods]);

    // the kills did leave debris (reservations of dead or un-DEL'd attachments, veths without reservations)
    const debris =
      Object.keys(reservationMap(node.ipamDir)).length + (await tabbyVeths(node.name)).length - 2 * probes.length;
    expect(debris).toBeGreaterThan(0);

    // GC, keeping only the probes: exactly their reservations, veths and host routes remain
    const gc = await node.global('GC', {
      ...node.conf(),
      'cni.dev/valid-attachments': probes.map((p) => ({ containerID: p.cid, ifname: 'eth0' })),
    });
    expectSilentSuccess(gc);
    const expected = Object.fromEntries(probes.map((p) => [p.ip, `${p.cid}\r\neth0`]));
    expect(reservationMap(node.ipamDir)).toEqual(expected);
    expect((await tabbyVeths(node.name)).sort()).toEqual(probes.map((p) => p.veth).sort());
    const hostRoutes = (await routes(node.name))
      .filter((r) => r.dev?.startsWith('tab'))
      .map((r) => r.dst)
      .sort();
    expect(hostRoutes).toEqual(probes.map((p) => p.ip).sort());
    expectSilentSuccess(await node.global('STATUS', node.conf()));

    // and the probes are whole: CHECK passes, DEL leaves nothing
    for (const p of probes) expectSilentSuccess(await node.del(p.pod, p.cid, { env: AFTER_KILL }));
    expect(reservationMap(node.ipamDir)).toEqual({});
    expect(await tabbyVeths(node.name)).toEqual([]);
  }, 240_000);
});
