// Node built-ins that the operator loads with `require` instead of `import`. In Node 24, the first ESM
// import of a built-in evaluates its ESM facade, which reads every export, including the lazy getters.
// `import … from 'node:http'` reads http.WebSocket, CloseEvent and MessageEvent, and so loads Node's
// bundled undici (fetch, WebSocket, EventSource: 745 KB of source, compiled). That costs 12.9 MB
// resident, measured with the image's node flags: 59.3 MB against 46.4 MB for `require('node:http')`.
// node:util, node:fs and node:process add 2.5 to 4 MB each in the same way. `require` returns the exports
// object without reading its getters. test/unit/operator/module-graph.test.ts checks that the operator
// never loads the bundled undici.
import { createRequire } from 'node:module';
import type * as Http from 'node:http';
import type * as Fs from 'node:fs';
import type * as Util from 'node:util';

const require = createRequire(import.meta.url);

export const http = require('node:http') as typeof Http;
export const fs = require('node:fs') as typeof Fs;
export const util = require('node:util') as typeof Util;
