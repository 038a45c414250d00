// Runs a built Worker in Miniflare (workerd) on 127.0.0.1 for tests and measurements.
// Input: one JSON object on the command line:
//   { script, compatibilityDate, port, bindings: {NAME: value}, durableObjects: {BINDING: ClassName},
//     packages }
// `packages` is the folder whose node_modules holds Miniflare (the tests install it outside the
// repository, with the other pinned tools).
// Prints `ready <url>` once it serves, then runs until stdin closes or a signal arrives.
import { createRequire } from "node:module";
import { join } from "node:path";

const options = JSON.parse(process.argv[2] ?? "{}");
const { Miniflare } = createRequire(join(options.packages ?? process.cwd(), "package.json"))(
  "miniflare",
);
const durableObjects = Object.fromEntries(
  Object.entries(options.durableObjects ?? {}).map(([binding, className]) => [
    binding,
    { className, useSQLite: true },
  ]),
);
const mf = new Miniflare({
  modules: true,
  modulesRules: [{ type: "CompiledWasm", include: ["**/*.wasm"] }],
  scriptPath: options.script,
  compatibilityDate: options.compatibilityDate,
  bindings: options.bindings ?? {},
  durableObjects,
  host: "127.0.0.1",
  port: options.port ?? 0,
  cf: false,
});
const url = await mf.ready;
console.log(`ready ${url.origin}`);

const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
