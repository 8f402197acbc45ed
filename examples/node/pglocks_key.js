// pglocks_key computed in Node.js by the pglocks package's key() (node:crypto, no server).
//
// Prints "key<TAB>pglocks_key" for each argument, or for the specification's vectors when
// given none.
'use strict';

const { key } = require('pglocks');

const SPEC_KEYS = ['', 'some lock', 'orders:42', 'Grüße', '日本語'];

const args = process.argv.slice(2);
for (const name of args.length > 0 ? args : SPEC_KEYS) console.log(`${name}\t${key(name)}`);
