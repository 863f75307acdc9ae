import cluster from 'node:cluster';
import { processIO } from './io.js';
import { runCli } from './program.js';

// `meli-proxy serve --help | head` closes the pipe early: that is not an error worth a stack trace.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

const code = await runCli(process.argv.slice(2), processIO());
process.exitCode = code;
// A cluster worker's channel to its primary would keep it running: `serve` returns only when it
// could not start (port in use, bad setting), and the primary is waiting for that exit code.
if (cluster.isWorker) process.exit(code);
