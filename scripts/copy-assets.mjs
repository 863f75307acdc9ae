// Files the build ships as they are (tsc emits only TypeScript): the dashboard's checked script.
import { copyFileSync, mkdirSync } from 'node:fs';

const ASSETS = ['server/dashboard/app.js'];

for (const asset of ASSETS) {
  mkdirSync(new URL(`../dist/${asset}/..`, import.meta.url), { recursive: true });
  copyFileSync(new URL(`../src/${asset}`, import.meta.url), new URL(`../dist/${asset}`, import.meta.url));
}
