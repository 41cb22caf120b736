import { makeCertificates } from '/work/main/__test__/certs.mjs';
import { writeFileSync } from 'node:fs';
const c = makeCertificates();
writeFileSync('/work/main/.scratch/r/certdir.txt', c.dir);
console.log(c.dir);
