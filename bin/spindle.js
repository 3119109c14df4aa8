#!/usr/bin/env node
// Launcher for the spindle CLI. The sources are TypeScript run by Node's built-in type
// stripping (on by default since Node 23.6), so refuse older Nodes with a clear message
// instead of a syntax error. This file is plain JS so that the check itself runs anywhere.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 23 || (major === 23 && minor < 6)) {
  process.stderr.write(
    `spindle needs Node.js >= 23.6 (it runs its TypeScript sources directly; Node 26 is the tested line), ` +
      `but this is Node ${process.versions.node}.\n` +
      `In a checkout, run it through npm (\`npm start\`, \`npm run serve -- --config FILE\`): ` +
      `npm scripts use the Node 26 installed as a devDependency.\n`,
  );
  process.exit(1);
}

// Imported dynamically so that the version check above runs before any TypeScript is loaded.
const { main } = await import('../src/supervisor/main.ts');
let code;
try {
  code = await main(process.argv.slice(2));
} catch (err) {
  process.stderr.write(
    `spindle: fatal: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  code = 1;
}
process.exit(code);
