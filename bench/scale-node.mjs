// One node of bench/scale.ts, in plain JavaScript so that it runs the built
// package under plain `node` (no TypeScript loader in the process whose
// memory and idle CPU are measured). Started with --expose-gc; obeys the
// parent's commands over IPC, one at a time:
//   { op: 'import', lib }       reports { op: 'imported', rss } (after a GC)
//   { op: 'start', nodes, id }  starts a switchboard, awaits rendezvous, reports { op: 'up', rss }
//   { op: 'idle', ms }          reports { op: 'idled', cpuUs, rss } over the next `ms`
//   { op: 'channels', count, role, peer }
//                               opens `count` channels to or from `peer`, one message each,
//                               reports { op: 'channels', heapBefore, heapAfter, rssBefore, rssAfter }
//   { op: 'exit' }
// The first message must be 'import' (or 'bare', which reports the RSS of a
// process that imported nothing).

let Switchboard;
let sb;

const gc = () => {
  globalThis.gc?.();
  globalThis.gc?.();
};
const send = (m) => process.send?.(m);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function handle(c) {
  switch (c.op) {
    case 'bare':
      gc();
      send({ op: 'imported', rss: process.memoryUsage().rss });
      return;
    case 'import':
      ({ Switchboard } = await import(c.lib));
      await sleep(50);
      gc();
      send({ op: 'imported', rss: process.memoryUsage().rss });
      return;
    case 'start':
      sb = await Switchboard.start({
        nodes: c.nodes,
        id: c.id,
        secret: 'bench-scale-secret-0123456789abcdef',
        reconnectMinMs: 10,
        reconnectMaxMs: 200,
      });
      await sb.rendezvous({ timeoutMs: 120_000 });
      send({ op: 'up', rss: process.memoryUsage().rss });
      return;
    case 'idle': {
      const c0 = process.cpuUsage();
      await sleep(c.ms);
      const d = process.cpuUsage(c0);
      send({ op: 'idled', cpuUs: d.user + d.system, rss: process.memoryUsage().rss });
      return;
    }
    case 'channels': {
      gc();
      const heapBefore = process.memoryUsage().heapUsed;
      const rssBefore = process.memoryUsage().rss;
      const kept = [];
      if (c.role === 'receive') {
        let got = 0;
        for (let i = 0; i < c.count; i++) {
          const r = sb.receiver(`ch${i}`);
          kept.push(r);
          void r.next().then(() => got++);
        }
        send({ op: 'listening' });
        while (got < c.count) await sleep(20);
      } else {
        for (let i = 0; i < c.count; i++) {
          const s = sb.sender(`ch${i}`, { node: c.peer, timeoutMs: 60_000 });
          kept.push(s);
          await s.send(i);
        }
      }
      await sleep(500);
      gc();
      send({
        op: 'channels',
        heapBefore,
        heapAfter: process.memoryUsage().heapUsed,
        rssBefore,
        rssAfter: process.memoryUsage().rss,
        kept: kept.length,
      });
      return;
    }
    case 'exit':
      await sb?.close();
      process.exit(0);
  }
}

process.on('message', (c) => {
  handle(c).catch((err) => {
    send({ op: 'failed', message: String(err?.stack ?? err) });
  });
});
process.on('disconnect', () => process.exit(0));
send({ op: 'alive' });
