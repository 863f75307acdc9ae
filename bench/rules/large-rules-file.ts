/**
 * Writes a config file with the large rule set of the end-to-end check in bench/rules/README.md:
 * 998 small rules, one rule with 45,000 CIDR ranges and one with 40,000 path patterns.
 *
 *   npx tsx bench/rules/large-rules-file.ts /tmp/rules.yaml
 */
import { writeFileSync } from 'node:fs';

const target = process.argv[2];
if (!target) {
  process.stderr.write('usage: npx tsx bench/rules/large-rules-file.ts OUTPUT.yaml\n');
  process.exit(2);
}
let seed = 7;
const next = () => {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  return seed / 2 ** 32;
};
const octet = () => Math.floor(next() * 256);
const lines = ['limits:'];
for (let i = 0; i < 998; i++) {
  lines.push(
    i % 2 === 0
      ? `  - { id: r${i}, match: { ip: ${octet()}.${octet()}.${octet()}.${octet()} }, limit: 100/m }`
      : `  - { id: r${i}, match: { path: /small/${i}/* }, limit: 100/m }`,
  );
}
const cidrs = new Set<string>();
while (cidrs.size < 45_000) cidrs.add(`${Math.floor(next() * 224) + 1}.${octet()}.${octet()}.0/24`);
lines.push(`  - { id: big-ip, match: { ip: [${[...cidrs].join(', ')}] }, limit: 1000000/m }`);
const paths = Array.from({ length: 40_000 }, (_, i) =>
  i % 2 ? `/items/MLA${i}/*` : `/sites/S${i}/:id/search`,
);
lines.push(
  `  - { id: big-path, match: { path: [${paths.map((p) => `'${p}'`).join(', ')}] }, limit: 1000000/m }`,
);
writeFileSync(target, `${lines.join('\n')}\n`);
