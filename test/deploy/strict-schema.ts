/**
 * Strict validation of rendered objects: every field must be one the Kubernetes OpenAPI models know.
 *
 * kubernetes-models' own validate() checks types and required fields but lets unknown fields pass
 * (a misspelled `readinesProbe` is silently dropped by the API server's non-strict paths, and the
 * probe never runs). The models' TypeScript declarations are generated from the same OpenAPI
 * definitions, and TypeScript rejects unknown properties in object literals, so each object is
 * type-checked, in memory, as a literal of its model's interface.
 */
import { dirname, join } from 'node:path';
import ts from 'typescript';
import type { Manifest } from '../../src/deploy/manifests.js';
import { REPO_ROOT } from '../support/proxy.js';

/** Where the declarations of a custom resource's group live (the core groups are in kubernetes-models). */
const CUSTOM_GROUPS: Readonly<Record<string, string>> = {
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator',
  'keda.sh': '@kubernetes-models/keda',
};

export function modelModule(apiVersion: string, kind: string): string {
  const group = apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
  const root = CUSTOM_GROUPS[group] ?? 'kubernetes-models';
  return `${root}/${apiVersion}/${kind}`;
}

export interface StrictProblem {
  ref: string;
  message: string;
}

/** Type-checks every object against its model; returns one problem per diagnostic. */
export function strictProblems(manifests: readonly Manifest[]): StrictProblem[] {
  // The virtual file sits in the repository so that node_modules resolves from it.
  const fileName = join(REPO_ROOT, 'test', 'deploy', '__strict-manifests__.ts');
  const lines: string[] = [];
  const spans: Array<{ from: number; to: number; ref: string }> = [];
  manifests.forEach((manifest, index) => {
    const type = `M${index}`;
    lines.push(
      `import type { I${manifest.kind} as ${type} } from ${JSON.stringify(modelModule(manifest.apiVersion, manifest.kind))};`,
    );
    const from = lines.length;
    lines.push(...`export const o${index}: ${type} = ${JSON.stringify(manifest, null, 1)};`.split('\n'));
    spans.push({ from, to: lines.length - 1, ref: `${manifest.kind}/${manifest.metadata.name}` });
  });
  const text = lines.join('\n');
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, language, ...rest) =>
    name === fileName ? ts.createSourceFile(name, text, language) : getSourceFile(name, language, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => name === fileName || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (name === fileName ? text : readFile(name));
  // A package.json beside it says "module": resolution follows the packages' `exports`.
  host.getCurrentDirectory = () => dirname(fileName);
  const program = ts.createProgram([fileName], options, host);
  const source = program.getSourceFile(fileName)!;
  return ts.getPreEmitDiagnostics(program, source).map((diagnostic) => {
    const line =
      diagnostic.start === undefined ? -1 : source.getLineAndCharacterOfPosition(diagnostic.start).line;
    const span = spans.find((item) => line >= item.from && line <= item.to);
    return {
      ref: span?.ref ?? '(imports)',
      message: ts.flattenDiagnosticMessageText(diagnostic.messageText, ' '),
    };
  });
}
