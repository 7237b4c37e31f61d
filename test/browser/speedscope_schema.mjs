// SPDX-License-Identifier: Apache-2.0
// Validates speedscope files against the schema the speedscope package
// publishes (dist/release/file-format-schema.json), then checks what the
// schema cannot say: frame indices in range, one weight per sample, weights
// adding up to endValue.
//
// usage: node speedscope_schema.mjs FILE.json...
import { readFileSync } from 'node:fs';
import path from 'node:path';

import { fail, requireTool, speedscopeRelease } from './speedscope_tools.mjs';

const files = process.argv.slice(2);
if (files.length === 0) fail('usage: speedscope_schema.mjs FILE.json...');

const Ajv = requireTool('ajv').default;
const schemaPath = path.join(speedscopeRelease(), 'file-format-schema.json');
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));
const ajv = new Ajv({ allErrors: true, strict: true });
const validate = ajv.compile(schema);

function semanticErrors(doc) {
  const errors = [];
  const frames = doc.shared.frames.length;
  if (doc.profiles.length > 0 && !(doc.activeProfileIndex >= 0 && doc.activeProfileIndex < doc.profiles.length))
    errors.push(`activeProfileIndex ${doc.activeProfileIndex} names no profile`);
  if (doc.profiles.length === 0 && 'activeProfileIndex' in doc)
    errors.push('activeProfileIndex without profiles');
  if (!/^pyflame \S+$/.test(doc.exporter)) errors.push(`exporter ${JSON.stringify(doc.exporter)}`);
  doc.shared.frames.forEach((f, i) => {
    if ('line' in f && !(Number.isInteger(f.line) && f.line > 0)) errors.push(`frame ${i}: line ${f.line}`);
  });
  doc.profiles.forEach((p, i) => {
    const where = `profile ${i} (${p.name})`;
    if (p.type !== 'sampled' || p.unit !== 'seconds' || p.startValue !== 0)
      errors.push(`${where}: not a sampled profile in seconds from 0`);
    if (p.samples.length !== p.weights.length)
      errors.push(`${where}: ${p.samples.length} samples but ${p.weights.length} weights`);
    p.samples.forEach((s, k) => {
      for (const f of s)
        if (!(Number.isInteger(f) && f >= 0 && f < frames)) errors.push(`${where}: sample ${k} frame ${f}`);
    });
    if (p.weights.some((w) => !(w > 0))) errors.push(`${where}: a weight is not positive`);
    const sum = p.weights.reduce((a, b) => a + b, 0);
    if (Math.abs(sum - p.endValue) > 1e-9 * Math.max(1, p.endValue))
      errors.push(`${where}: weights add up to ${sum}, endValue is ${p.endValue}`);
  });
  return errors;
}

let failures = 0;
for (const file of files) {
  const doc = JSON.parse(readFileSync(file, 'utf8'));
  if (!validate(doc)) {
    console.error(`${file}: does not match ${schemaPath}:`);
    for (const e of validate.errors) console.error(`  ${e.instancePath || '/'} ${e.message}`);
    failures++;
    continue;
  }
  const errors = semanticErrors(doc);
  if (errors.length > 0) {
    console.error(`${file}:`);
    for (const e of errors) console.error(`  ${e}`);
    failures++;
    continue;
  }
  console.log(`ok ${path.basename(file)}: ${doc.profiles.length} profiles, ${doc.shared.frames.length} frames`);

  // The validator must be able to say no: a file broken in ways the schema
  // forbids has to be rejected, or the pass above proves nothing.
  const broken = [
    (d) => { d.$schema = 'https://example.com/other.json'; },
    (d) => { delete d.shared.frames; },
    (d) => { d.shared.frames.push({ file: 'no name' }); },
    (d) => { d.profiles.push({ type: 'sampled', name: 'x', unit: 'ticks', startValue: 0, endValue: 0, samples: [], weights: [] }); },
    (d) => { d.profiles.push({ type: 'sampled', name: 'x', unit: 'seconds', startValue: 0, endValue: 0, samples: [] }); },
  ];
  broken.forEach((breakIt, i) => {
    const copy = structuredClone(doc);
    breakIt(copy);
    if (validate(copy)) {
      console.error(`${file}: the schema accepted broken variant ${i}`);
      failures++;
    }
  });
}
if (failures > 0) fail(`${failures} problem(s)`);
