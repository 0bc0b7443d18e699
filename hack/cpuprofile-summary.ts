// Summarises a V8 .cpuprofile (node --cpu-prof) by self time per frame, by package, and, for frames
// matching an optional pattern, by inclusive time (samples with the frame anywhere on the stack).
//   node hack/cpuprofile-summary.ts file.cpuprofile [top=15] [inclusive-pattern]
// V8 samples the main thread's wall-clock time, so on a loaded machine the shares include time the process
// was descheduled; /proc utime+stime is the CPU measure, this shows where the time goes.
import { readFileSync } from 'node:fs';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const [file, topArg, pattern] = process.argv.slice(2);
if (!file) {
  console.error('usage: node hack/cpuprofile-summary.ts file.cpuprofile [top=15] [inclusive-pattern]');
  process.exit(2);
}
const top = Number(topArg ?? 15);
const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<number, number>();
profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

const isIdle = (id: number) => byId.get(id)?.callFrame.functionName === '(idle)';
const frameName = (n: ProfileNode) => {
  const url = n.callFrame.url
    .replace(/^file:\/\/.*node_modules\//, '')
    .replace(/^file:\/\/.*?\/(src|dist)\//, '$1/');
  return `${n.callFrame.functionName || '(anonymous)'}${url ? ` ${url}:${n.callFrame.lineNumber + 1}` : ''}`;
};
const areaOf = (n: ProfileNode) => {
  const pkg = /node_modules\/((@[^/]+\/)?[^/]+)/.exec(n.callFrame.url)?.[1];
  if (pkg) return pkg;
  if (n.callFrame.url.includes('/src/')) return 'operator src';
  if (n.callFrame.url.startsWith('node:')) return 'node core';
  return n.callFrame.functionName.startsWith('(') ? n.callFrame.functionName : 'native/other';
};
const add = (m: Map<string, number>, k: string, v: number) => m.set(k, (m.get(k) ?? 0) + v);

let busy = 0;
const frames = new Map<string, number>();
const areas = new Map<string, number>();
const inclusive = new Map<string, number>();
const match = pattern ? new RegExp(pattern) : undefined;
for (const [id, t] of self) {
  if (isIdle(id)) continue;
  busy += t;
  const n = byId.get(id) as ProfileNode;
  add(frames, frameName(n), t);
  add(areas, areaOf(n), t);
  if (!match) continue;
  const seen = new Set<string>();
  for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
    const name = frameName(byId.get(cur) as ProfileNode);
    if (seen.has(name) || !match.test(name)) continue;
    seen.add(name);
    add(inclusive, name, t);
  }
}
const pct = (t: number) => ((100 * t) / busy).toFixed(1);
const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, top);
console.log(
  `busy ${(busy / 1e6).toFixed(2)} s sampled\n\n| self % | self ms | frame |\n| ---: | ---: | --- |`,
);
for (const [k, t] of sorted(frames)) console.log(`| ${pct(t)} | ${(t / 1000).toFixed(0)} | \`${k}\` |`);
console.log('\nby package:');
for (const [k, t] of sorted(areas)) console.log(`  ${pct(t)}%  ${k}`);
if (match) {
  console.log(`\ninclusive, frames matching /${pattern}/:`);
  for (const [k, t] of sorted(inclusive)) console.log(`  ${pct(t)}%  ${(t / 1000).toFixed(0)} ms  ${k}`);
}
