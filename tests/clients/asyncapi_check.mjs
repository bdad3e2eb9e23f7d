// AsyncAPI document checker for the integration tests: they feed it the
// AsyncAPI document that sse-kafka serves, and it validates that document
// with the official @asyncapi/parser. Every diagnostic is printed as one JSON
// line on stdout; severity-0 (error) diagnostics are failures.
//
// Usage: node asyncapi_check.mjs FILE     (FILE: AsyncAPI document, YAML or JSON)
// Output: one line per diagnostic,
//   {"severity":N,"code":"...","message":"...","path":[...]}
//   severity: 0 error, 1 warning, 2 info, 3 hint.
// Exit: 0 no error diagnostic, 1 at least one error diagnostic,
//       2 usage or I/O error (or the checker itself crashed).

import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Parser } from '@asyncapi/parser';

const USAGE = 'usage: node asyncapi_check.mjs FILE';

async function main(argv) {
  if (argv.length !== 1 || argv[0] === '-h' || argv[0] === '--help') {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const file = resolve(argv[0]);
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    process.stderr.write(`asyncapi_check: cannot read ${argv[0]}: ${err.message}\n`);
    return 2;
  }

  // `source` lets relative external $refs resolve against the file's location.
  const { document, diagnostics } = await new Parser().parse(text, { source: file });

  let errors = 0;
  let warnings = 0;
  for (const d of diagnostics) {
    if (d.severity === 0) errors += 1;
    else if (d.severity === 1) warnings += 1;
    const line = {
      severity: d.severity,
      code: String(d.code),
      message: d.message,
      path: Array.isArray(d.path) ? d.path : [],
    };
    process.stdout.write(`${JSON.stringify(line)}\n`);
  }
  process.stderr.write(
    `asyncapi_check: ${diagnostics.length} diagnostic(s), ${errors} error(s), ${warnings} warning(s)\n`,
  );
  if (errors > 0) return 1;
  if (document === undefined) {
    // Not expected: the parser only withholds the document on errors.
    process.stderr.write('asyncapi_check: the parser returned no document\n');
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (err) => {
    process.stderr.write(`asyncapi_check: ${err && err.stack ? err.stack : err}\n`);
    process.exitCode = 2;
  },
);
