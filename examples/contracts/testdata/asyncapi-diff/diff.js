// diff.js runs pairs of contract files through @asyncapi/diff, an AsyncAPI
// tool nobody here wrote, so that its verdicts can be set beside troupe's.
// Used by go test ./examples/contracts/.
//
//	node diff.js PAIRS.json
//
// PAIRS.json is a list of {"name", "before", "after"} (file paths). Each
// document is first parsed and validated by @asyncapi/parser, which also
// resolves every $ref, as @asyncapi/diff asks; the parser's own x-parser-*
// annotations are dropped, since they number anonymous schemas and would
// show up as changes. It prints a JSON list of {"name", "verdict",
// "changes"}: verdict is "breaking" when a change is classified breaking,
// else "unclassified" when one is not classified, else "non-breaking"
// ("none" when nothing changed). It exits with status 1 if a document does
// not parse.
'use strict';

const fs = require('node:fs');
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');
const { diff } = require('@asyncapi/diff');

function strip(v) {
  if (Array.isArray(v)) return v.map(strip);
  if (v === null || typeof v !== 'object') return v;
  const out = {};
  for (const [k, x] of Object.entries(v)) {
    if (!k.startsWith('x-parser-')) out[k] = strip(x);
  }
  return out;
}

// Many pairs share a side (an app's unchanged export): parse each text once.
const parsed = new Map();

async function load(parser, file) {
  const text = fs.readFileSync(file, 'utf8');
  if (!parsed.has(text)) parsed.set(text, await parse(parser, file, text));
  return parsed.get(text);
}

async function parse(parser, file, text) {
  const { document, diagnostics } = await parser.parse(text, { source: file });
  const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
  if (!document || errors.length > 0) {
    throw new Error(`${file}: ${errors.map((d) => d.code + ': ' + d.message).join('; ') || 'no document'}`);
  }
  return strip(document.json());
}

async function main(manifest) {
  if (!manifest) {
    console.error('usage: node diff.js PAIRS.json');
    return 2;
  }
  const parser = new Parser();
  const out = [];
  for (const pair of JSON.parse(fs.readFileSync(manifest, 'utf8'))) {
    const before = await load(parser, pair.before);
    const after = await load(parser, pair.after);
    const changes = diff(before, after).getOutput().changes.map((c) => ({ path: c.path, action: c.action, type: c.type }));
    let verdict = 'none';
    if (changes.some((c) => c.type === 'breaking')) verdict = 'breaking';
    else if (changes.some((c) => c.type === 'unclassified')) verdict = 'unclassified';
    else if (changes.length > 0) verdict = 'non-breaking';
    out.push({ name: pair.name, verdict, changes });
  }
  console.log(JSON.stringify(out, null, 1));
  return 0;
}

main(process.argv[2]).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err.message || err); process.exitCode = 1; },
);
