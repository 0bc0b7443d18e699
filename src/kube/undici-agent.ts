// undici's Agent (the connection pool) alone. `import { Agent } from 'undici'` loads all of undici (fetch,
// WebSocket, caches, mock agents, EventSource: ~110 modules, measured ~31 MB resident on Node 24); the
// Agent's own module with what it needs is about half of that. It is the same class the package exports.
import { createRequire } from 'node:module';
import type { Agent as UndiciAgent } from 'undici';

const require = createRequire(import.meta.url);

export const Agent = require('undici/lib/dispatcher/agent.js') as typeof UndiciAgent;
