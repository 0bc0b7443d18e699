// undici's Agent (the connection pool) without the rest of undici. `import { Agent } from 'undici'` loads
// all of it (fetch, WebSocket, caches, mock agents, EventSource: ~110 modules, ~31 MB resident measured on
// Node 24); the Agent's module and the request API are about half of that. undici's index.js gives every
// Dispatcher its request/stream/pipeline/connect/upgrade methods with `Object.assign(Dispatcher.prototype,
// api)`; the same assignment is made here (idempotent, the same functions), so an Agent from this module
// works whether or not anything else loads undici's root. It is the class the package exports.
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent } from 'undici';

const require = createRequire(import.meta.url);

const dispatcher = require('undici/lib/dispatcher/dispatcher.js') as { prototype: object };
const api = require('undici/lib/api/index.js') as object;
Object.assign(dispatcher.prototype, api);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
