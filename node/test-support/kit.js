'use strict';
// Shared pieces of the node:test suites (kept outside test/ so the runner does not count
// this file as a test): temporary data directories and a real server process.

const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const BIN = path.join(__dirname, '..', 'bin', 'memsilo.js');

/** A fresh temporary directory, removed when the process exits. */
function tmpdir(prefix = 'memsilo-node-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `node bin/memsilo.js serve` on a free port with a known admin key and waits for
 * its "listening" line on stderr. Resolves to `{url, adminKey, data, stderr(), stop(signal)}`.
 */
async function startServer({ data = tmpdir('memsilo-node-server-'), timeoutMs = 60_000 } = {}) {
  const port = await freePort();
  const adminKey = `msk_nodetest_admin_${process.pid}_${port}_0123456789abcdef`;
  const child = spawn(process.execPath, [BIN, 'serve', '--data', data, '--listen', `127.0.0.1:${port}`], {
    env: { ...process.env, MEMSILO_ADMIN_KEY: adminKey },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (b) => {
    log += b;
  });
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not say "listening" within ${timeoutMs} ms:\n${log}`)), timeoutMs);
    child.stderr.on('data', (b) => {
      log += b;
      if (/listening/i.test(log)) {
        clearTimeout(timer);
        resolve();
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`server exited (code ${code}, signal ${signal}) before listening:\n${log}`));
    });
  });
  const kill = () => child.kill('SIGKILL');
  process.on('exit', kill);
  return {
    url: `http://127.0.0.1:${port}`,
    adminKey,
    stderr: () => log,
    data,
    async stop(signal = 'SIGTERM') {
      process.off('exit', kill);
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      const timer = setTimeout(kill, 10_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
}

module.exports = { tmpdir, freePort, startServer };
