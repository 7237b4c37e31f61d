// SPDX-License-Identifier: Apache-2.0
// Shared by the speedscope tests: finds the tools test/tools/browser.sh
// installs, and reports a missing one as a CTest skip (exit 77).
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import path from 'node:path';

export const toolsDir = process.env.PYFLAME_TOOLS || '/var/cache/pyflame/tools';
const nodeModules = path.join(toolsDir, 'node_modules');
const require = createRequire(path.join(nodeModules, 'package.json'));

export function skip(reason) {
  console.log(`SKIP: ${reason}`);
  process.exit(77);
}

export function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

// A package from the tools folder, or a skip naming the installer.
export function requireTool(name) {
  try {
    return require(name);
  } catch (e) {
    skip(`npm package ${name} is not in ${nodeModules} (run test/tools/browser.sh): ${e.code || e.message}`);
  }
}

// The built viewer shipped in the speedscope package, and its schema.
export function speedscopeRelease() {
  const dir = path.join(nodeModules, 'speedscope', 'dist', 'release');
  if (!existsSync(path.join(dir, 'index.html')) || !existsSync(path.join(dir, 'file-format-schema.json')))
    skip(`no speedscope release in ${dir} (run test/tools/browser.sh)`);
  return dir;
}
