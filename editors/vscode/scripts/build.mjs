// Bundles the extension with esbuild: `--production` minifies for the package, `--tests`
// builds the unit tests for `node --test` instead.
import * as esbuild from "esbuild";
import { readdirSync } from "node:fs";

const production = process.argv.includes("--production");
const tests = process.argv.includes("--tests");

if (tests) {
  const entryPoints = readdirSync("test/unit")
    .filter((name) => name.endsWith(".test.ts"))
    .map((name) => `test/unit/${name}`);
  await esbuild.build({
    entryPoints,
    outdir: "out/test/unit",
    bundle: true,
    platform: "node",
    format: "cjs",
    target: "node20",
    sourcemap: "inline",
    logLevel: "warning",
  });
} else {
  await esbuild.build({
    entryPoints: ["src/extension.ts"],
    outfile: "dist/extension.js",
    bundle: true,
    // The editor provides `vscode` at run time.
    external: ["vscode"],
    platform: "node",
    format: "cjs",
    target: "node18",
    minify: production,
    sourcemap: !production,
    logLevel: "warning",
  });
}
