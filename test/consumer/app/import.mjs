// (a) A plain `node import.mjs`, no flags: the package loads as compiled ESM.
import * as mtls from '@svid-operator/mtls';

const names = ['SvidSource', 'createHttpsServer', 'SvidAgent', 'SvidDispatcher', 'authorizeAny', 'parseXfcc'];
console.log(JSON.stringify(Object.fromEntries(names.map((n) => [n, typeof mtls[n]]))));
