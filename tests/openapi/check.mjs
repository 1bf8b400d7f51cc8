// Contract check of the service's OpenAPI document. Reads the document from
// $KEYWARDEN_BASE_URL/openapi.json (the running service) or from a file named as the argument,
// then: (1) validates it against the OpenAPI 3.1 JSON schema, every schema object in it against
// JSON Schema 2020-12 (OpenAPI 3.1's dialect), and resolves every $ref; (2) generates
// TypeScript types from it with openapi-typescript; (3) type-checks client.ts, a small
// openapi-fetch client over those types, with the TypeScript compiler in strict mode. Exits
// non-zero, saying which step failed and why. By hand: `npm ci`, then
// `KEYWARDEN_BASE_URL=http://127.0.0.1:8443 node check.mjs` or `node check.mjs openapi.json`.
import { readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Validator } from "@seriousme/openapi-schema-validator";
import Ajv2020 from "ajv/dist/2020.js";
import openapiTS, { astToString } from "openapi-typescript";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));

async function load() {
  if (process.argv[2]) return JSON.parse(await readFile(process.argv[2], "utf8"));
  const base = process.env.KEYWARDEN_BASE_URL;
  if (!base) throw new Error("name a document file or set KEYWARDEN_BASE_URL");
  const res = await fetch(`${base}/openapi.json`);
  if (!res.ok) throw new Error(`GET /openapi.json answered ${res.status}`);
  return res.json();
}

function fail(step, lines) {
  console.error(`openapi: ${step} failed`);
  for (const line of lines) console.error(`  ${line}`);
  process.exit(1);
}

const doc = await load();

// 1. The document is OpenAPI 3.1 and matches its schema.
if (!String(doc.openapi).startsWith("3.1")) {
  fail("version", [`openapi is ${doc.openapi}, not 3.1.x`]);
}
const validator = new Validator();
const result = await validator.validate(structuredClone(doc));
if (!result.valid) {
  const errors = Array.isArray(result.errors) ? result.errors : [result.errors];
  fail("OpenAPI schema validation", errors.slice(0, 40).map((e) => JSON.stringify(e)));
}
// The OpenAPI schema leaves schema objects open; check each against JSON Schema 2020-12.
const dialect = new Ajv2020({ strict: false, validateFormats: false });
const badSchemas = [];
(function walk(node, at) {
  if (node === null || typeof node !== "object") return;
  for (const [key, value] of Object.entries(node)) {
    const where = `${at}/${key}`;
    const isSchema = key === "schema" || at.endsWith("/components/schemas");
    if (isSchema && value && typeof value === "object" && !dialect.validateSchema(value)) {
      badSchemas.push(`${where}: ${dialect.errorsText(dialect.errors)}`);
    } else {
      walk(value, where);
    }
  }
})(doc, "#");
if (badSchemas.length > 0) fail("JSON Schema 2020-12 validation", badSchemas.slice(0, 40));
try {
  validator.resolveRefs();
} catch (e) {
  fail("$ref resolution", [String(e?.message ?? e)]);
}
console.log(`validated as OpenAPI ${validator.version}`);

// 2. TypeScript types from it (openapi-typescript also resolves every $ref).
let types;
try {
  types = astToString(await openapiTS(doc, { silent: true }));
} catch (e) {
  fail("type generation", [String(e?.message ?? e)]);
}
console.log(`generated ${types.split("\n").length} lines of types`);

// 3. A client over them compiles. The generated module is served from memory at the path
// client.ts imports, so runs side by side do not share a file.
const options = {
  strict: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  skipLibCheck: true,
  noUnusedLocals: true,
};
const generatedPath = join(here, "api.generated.ts");
const host = ts.createCompilerHost(options);
const { fileExists, readFile: readSource, getSourceFile } = host;
host.fileExists = (f) => f === generatedPath || fileExists(f);
host.readFile = (f) => (f === generatedPath ? types : readSource(f));
host.getSourceFile = (f, language, ...rest) =>
  f === generatedPath
    ? ts.createSourceFile(f, types, language)
    : getSourceFile(f, language, ...rest);
const program = ts.createProgram([join(here, "client.ts")], options, host);
const diagnostics = ts.getPreEmitDiagnostics(program);
if (diagnostics.length > 0) {
  fail(
    "type check of the generated client",
    ts.formatDiagnostics(diagnostics, {
      getCanonicalFileName: (f) => f,
      getCurrentDirectory: () => here,
      getNewLine: () => "\n",
    }).trimEnd().split("\n"),
  );
}
console.log("generated client type-checks");
