/** Regenerates the parts of the documentation derived from code (`npm run docs`). */
import { readFileSync, writeFileSync } from 'node:fs';
import { withConfigReference } from '../src/config-reference.js';

const path = new URL('../docs/configuration.md', import.meta.url);
const before = readFileSync(path, 'utf8');
const after = withConfigReference(before);
if (after !== before) writeFileSync(path, after);
process.stdout.write(
  after === before ? 'docs/configuration.md is up to date\n' : 'docs/configuration.md updated\n',
);
