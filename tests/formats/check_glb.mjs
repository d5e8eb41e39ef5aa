// Validates GLB files with the Khronos glTF-Validator (the npm `gltf-validator` package, pinned
// in tests/formats/package-lock.json; install it with `npm ci --prefix tests/formats`).
//
// Usage: node tests/formats/check_glb.mjs MODEL.glb [MODEL.glb ...]
//
// Prints one line per file with the counts of errors, warnings, infos and hints and the
// validator's version, then each issue found (severity, code, JSON pointer, message). Exits 1
// if any file has an error or a warning, or cannot be read or parsed as a GLB; 2 on bad usage.
// Every file is parsed as GLB (not glTF JSON), and a file that points outside itself (a
// buffer or image URI) fails: what we store and serve must be self-contained.

import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';

let validator;
try {
    validator = (await import('gltf-validator')).default;
} catch (error) {
    console.error(`gltf-validator is not installed: run \`npm ci --prefix tests/formats\` (${error.message})`);
    process.exit(2);
}

const SEVERITY = ['error', 'warning', 'info', 'hint'];

const paths = process.argv.slice(2);
if (paths.length === 0) {
    console.error('usage: node tests/formats/check_glb.mjs MODEL.glb [MODEL.glb ...]');
    process.exit(2);
}

let failed = 0;
for (const path of paths) {
    let report;
    try {
        const bytes = new Uint8Array(await readFile(path));
        report = await validator.validateBytes(bytes, {
            uri: basename(path),
            format: 'glb',
            maxIssues: 0, // every issue
            writeTimestamp: false,
            // A GLB that names an external file is reported (IO_ERROR) instead of passing
            // unchecked.
            externalResourceFunction: (uri) => Promise.reject(`external resource ${uri}: a GLB must be self-contained`),
        });
    } catch (error) {
        console.log(`${path}: FAILED, not validated: ${error}`);
        failed += 1;
        continue;
    }
    const { numErrors, numWarnings, numInfos, numHints, messages } = report.issues;
    const ok = numErrors === 0 && numWarnings === 0;
    console.log(
        `${path}: ${ok ? 'ok' : 'FAILED'}, ${numErrors} errors, ${numWarnings} warnings, ` +
            `${numInfos} infos, ${numHints} hints (glTF-Validator ${report.validatorVersion})`,
    );
    for (const m of messages) {
        const where = m.pointer ?? (m.offset !== undefined ? `byte ${m.offset}` : '-');
        console.log(`  ${SEVERITY[m.severity] ?? m.severity} ${m.code} at ${where}: ${m.message}`);
    }
    if (report.issues.truncated) {
        console.log('  (the validator truncated its list of issues)');
    }
    if (!ok) {
        failed += 1;
    }
}
if (failed > 0) {
    console.error(`${failed} of ${paths.length} files failed validation`);
    process.exit(1);
}
