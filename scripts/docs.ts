/** Regenerates the parts of README.md derived from code (`npm run docs`). */
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigReference } from '../src/config-reference.js';

const path = new URL('../README.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = withConfigReference(before);
if (after !== before) writeFileSync(path, after);
process.stdout.write(after === before ? 'README.md is up to date\n' : 'README.md updated\n');
