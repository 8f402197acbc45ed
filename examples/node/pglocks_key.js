// pglocks_key computed in Node.js with the standard library only.
//
// Run as a program it prints "key<TAB>pglocks_key" for each argument, or for the
// specification's vectors when given none.
'use strict';

const crypto = require('node:crypto');

// The specification's vectors: key -> pglocks_key.
const SPEC_VECTORS = [
  ['', -2039914840885289964n],
  ['some lock', -5006958056254205714n],
  ['orders:42', -8476019149258318077n],
  ['Grüße', -559005354142841542n],
  ['日本語', 8606672379249086371n],
];

// A BigInt: a JavaScript number cannot hold every 64-bit key exactly.
function pglocksKey(key) {
  return crypto.createHash('sha256').update(key, 'utf8').digest().readBigInt64BE(0);
}

module.exports = { pglocksKey, SPEC_VECTORS };

if (require.main === module) {
  const args = process.argv.slice(2);
  const keys = args.length > 0 ? args : SPEC_VECTORS.map(([key]) => key);
  for (const key of keys) console.log(`${key}\t${pglocksKey(key)}`);
}
