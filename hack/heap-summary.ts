// Summarises a V8 heap snapshot (from hack/profile-wave.ts --heap or hack/profile-idle.ts --heap) by what
// holds the memory: self sizes grouped by node type and constructor (count, bytes, bytes ÷ --per), the
// strings by kind (sliced and cons strings, with the distinct parent strings the sliced ones keep alive), and
// the longest strings. For the issue 17 memory work: which structure costs what per identity.
//   node hack/heap-summary.ts FILE.heapsnapshot [--per 5000] [--top 40]
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { per: { type: 'string', default: '1' }, top: { type: 'string', default: '40' } },
});
const file = positionals[0];
if (!file) throw new Error('usage: node hack/heap-summary.ts FILE.heapsnapshot [--per N] [--top N]');
const per = Number(values.per);
const top = Number(values.top);

interface Snapshot {
  snapshot: {
    meta: {
      node_fields: string[];
      node_types: [string[], ...unknown[]];
      edge_fields: string[];
      edge_types: [string[], ...unknown[]];
    };
  };
  nodes: number[];
  edges: number[];
  strings: string[];
}
const snap = JSON.parse(await readFile(file, 'utf8')) as Snapshot;
const { meta } = snap.snapshot;
const nf = meta.node_fields.length;
const ef = meta.edge_fields.length;
const fType = meta.node_fields.indexOf('type');
const fName = meta.node_fields.indexOf('name');
const fSize = meta.node_fields.indexOf('self_size');
const fEdges = meta.node_fields.indexOf('edge_count');
const eType = meta.edge_fields.indexOf('type');
const eName = meta.edge_fields.indexOf('name_or_index');
const eTo = meta.edge_fields.indexOf('to_node');
const nodeTypes = meta.node_types[0];
const edgeTypes = meta.edge_types[0];
const { nodes, edges, strings } = snap;

const groups = new Map<string, { count: number; bytes: number }>();
const add = (key: string, bytes: number) => {
  const g = groups.get(key) ?? { count: 0, bytes: 0 };
  g.count++;
  g.bytes += bytes;
  groups.set(key, g);
};
let total = 0;
const slicedParents = new Set<number>();
let slicedCount = 0;
let slicedBytes = 0;
const longStrings: { size: number; text: string; type: string }[] = [];
for (let i = 0, e = 0; i < nodes.length; i += nf) {
  const type = nodeTypes[nodes[i + fType] ?? 0] ?? '?';
  const name = strings[nodes[i + fName] ?? 0] ?? '';
  const size = nodes[i + fSize] ?? 0;
  const edgeCount = nodes[i + fEdges] ?? 0;
  total += size;
  const key =
    type === 'object' || type === 'closure' || type === 'native'
      ? `${type} ${name.slice(0, 60)}`
      : type === 'hidden' || type === 'code' || type === 'array' || type === 'object shape'
        ? `${type} ${name.slice(0, 40)}`
        : type;
  add(key, size);
  if (type === 'sliced string') {
    slicedCount++;
    slicedBytes += size;
    for (let k = 0; k < edgeCount; k++) {
      const at = e + k * ef;
      if (edgeTypes[edges[at + eType] ?? 0] === 'internal' && strings[edges[at + eName] ?? 0] === 'parent')
        slicedParents.add(edges[at + eTo] ?? 0);
    }
  }
  if ((type === 'string' || type === 'concatenated string') && size > 4096)
    longStrings.push({ size, text: name.slice(0, 80), type });
  e += edgeCount * ef;
}
let parentBytes = 0;
for (const p of slicedParents) parentBytes += nodes[p + fSize] ?? 0;

const mb = (b: number) => (b / 2 ** 20).toFixed(2);
console.log(`${file}: ${nodes.length / nf} nodes, self sizes ${mb(total)} MB; per = ${per}`);
console.log(
  `sliced strings: ${slicedCount} (${mb(slicedBytes)} MB), keeping ${slicedParents.size} parent strings alive (${mb(parentBytes)} MB)`,
);
console.log(`${'group'.padEnd(72)} ${'count'.padStart(9)} ${'MB'.padStart(8)} ${'B/per'.padStart(8)}`);
for (const [key, g] of [...groups].sort((a, b) => b[1].bytes - a[1].bytes).slice(0, top))
  console.log(
    `${key.padEnd(72)} ${String(g.count).padStart(9)} ${mb(g.bytes).padStart(8)} ${(g.bytes / per).toFixed(0).padStart(8)}`,
  );
console.log('strings over 4 KiB:');
for (const s of longStrings.sort((a, b) => b.size - a.size).slice(0, 10))
  console.log(`  ${s.size} ${s.type} ${JSON.stringify(s.text)}`);
