#!/usr/bin/env node
'use strict';
// `npx memsilo serve --data ./data --listen 127.0.0.1:3300`: the bundled server. Arguments
// are those of the `memsilo` binary; the exit code is the server's.

const { serve } = require('../index.js');

serve(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`memsilo: ${err.message}`);
    process.exit(1);
  },
);
