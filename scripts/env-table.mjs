// Prints the README's environment-variable table from the option table in
// src/config.ts (run after `npm run build:ts`); a unit test keeps them equal.
import { OPTIONS } from '../dist/js/config.js';
import { envTable } from '../dist/js/help.js';

console.log(envTable(OPTIONS));
