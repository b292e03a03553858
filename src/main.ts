import { main } from './entry.js';

void main(process.argv);
