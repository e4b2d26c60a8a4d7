// validate.js checks AsyncAPI documents with the AsyncAPI parser, which
// validates them against the published AsyncAPI JSON Schema of their version
// and its rules (references resolve, operations use their channel's
// messages, ...). Used by go test ./topology/.
//
//	node validate.js FILE...
//
// It prints one line per diagnostic ("FILE: error|warning|info|hint CODE
// at PATH: MESSAGE") and exits with status 1 if any document has an error.
'use strict';

const fs = require('node:fs');
const { Parser, DiagnosticSeverity } = require('@asyncapi/parser');

const severity = {
  [DiagnosticSeverity.Error]: 'error',
  [DiagnosticSeverity.Warning]: 'warning',
  [DiagnosticSeverity.Information]: 'info',
  [DiagnosticSeverity.Hint]: 'hint',
};

async function main(files) {
  if (files.length === 0) {
    console.error('usage: node validate.js FILE...');
    return 2;
  }
  const parser = new Parser();
  let failed = false;
  for (const file of files) {
    const { document, diagnostics } = await parser.parse(fs.readFileSync(file, 'utf8'), { source: file });
    for (const d of diagnostics) {
      const where = d.path && d.path.length ? ' at ' + d.path.join('/') : '';
      console.log(`${file}: ${severity[d.severity] || d.severity} ${d.code}${where}: ${d.message}`);
      if (d.severity === DiagnosticSeverity.Error) failed = true;
    }
    if (!document) {
      console.log(`${file}: error: the parser returned no document`);
      failed = true;
    } else {
      console.log(`${file}: AsyncAPI ${document.version()}, ${document.channels().length} channels, ${document.operations().length} operations, ${document.messages().length} messages`);
    }
  }
  return failed ? 1 : 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => { console.error(err); process.exitCode = 2; },
);
