// Every front-end module links: each `import { a } from "./x.mjs"` names a real export.
// The entry modules (call-button.js, health.js) touch the DOM when they run, so they are
// read, not run; the modules they import only define things and are imported here.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";

const STATIC = resolve(dirname(fileURLToPath(import.meta.url)), "../../static");
const ENTRIES = ["telephony/call-button.js", "dashboard/health.js"];
// Module folders beyond the entry's own: the softphone, imported on demand by the buttons.
const MORE = { "telephony/call-button.js": ["telephony/softphone"] };
const IMPORT = /^import\s+(?:\{([^}]*)\}|\*\s+as\s+\w+)\s+from\s+"([^"]+)";/gm;

function modulesOf(entry) {
  const dirs = [entry.replace(/\.js$/, ""), ...(MORE[entry] || [])].map((d) => join(STATIC, d));
  const mjs = (dir) => readdirSync(dir).filter((f) => f.endsWith(".mjs")).map((f) => join(dir, f));
  return [join(STATIC, entry), ...dirs.flatMap(mjs)];
}

for (const entry of ENTRIES) {
  test(`${entry}: every import names an export of its module`, async () => {
    for (const file of modulesOf(entry)) {
      const source = readFileSync(file, "utf8");
      for (const [, names, spec] of source.matchAll(IMPORT)) {
        const relative = spec.startsWith("./") || spec.startsWith("../");
        assert.ok(relative && spec.endsWith(".mjs"), `${file}: ${spec} (relative .mjs only)`);
        const target = await import(pathToFileURL(resolve(dirname(file), spec)).href);
        for (const name of (names || "").split(",").map((n) => n.trim()).filter(Boolean)) {
          assert.ok(name in target, `${file}: ${spec} has no export ${name}`);
        }
      }
    }
  });
}

test("the entry modules declare no globals but window.TelephonyCallButtons", () => {
  for (const file of ENTRIES.flatMap(modulesOf)) {
    const source = readFileSync(file, "utf8");
    for (const [, name] of source.matchAll(/\bwindow\.(\w+)\s*=[^=]/g)) {
      assert.equal(name, "TelephonyCallButtons", `${file} sets window.${name}`);
    }
    assert.doesNotMatch(source, /\bglobalThis\.\w+\s*=[^=]/, file);
  }
});
