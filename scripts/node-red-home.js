'use strict';
// A Node-RED user directory with this package installed into it (as a link to the checkout), the
// way the palette manager installs a package: under <userDir>/node_modules.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const pkg = require(path.join(root, 'package.json'));

/**
 * Creates (or refreshes) `userDir` with a settings file and this package linked into its
 * node_modules. Returns the path of the settings file. `tours: false` skips the editor's welcome
 * tour, whose overlay covers the editor.
 */
function prepareUserDir(
  userDir,
  { port = 1880, host = '127.0.0.1', flowFile = 'flows.json', tours = true } = {},
) {
  const link = path.join(userDir, 'node_modules', ...pkg.name.split('/'));
  fs.mkdirSync(path.dirname(link), { recursive: true });
  if (!fs.existsSync(link)) fs.symlinkSync(root, link, 'dir');
  if (!fs.existsSync(path.join(userDir, 'package.json'))) {
    const local = {
      name: 'node-red-project',
      private: true,
      dependencies: { [pkg.name]: `file:${root}` },
    };
    fs.writeFileSync(path.join(userDir, 'package.json'), JSON.stringify(local, null, 2) + '\n');
  }
  const settings = path.join(userDir, 'settings.js');
  fs.writeFileSync(
    settings,
    `module.exports = ${JSON.stringify(
      {
        uiHost: host,
        uiPort: port,
        flowFile,
        credentialSecret: false,
        diagnostics: { enabled: false },
        telemetry: { enabled: false },
        externalModules: { autoInstall: false, palette: { allowInstall: false } },
        logging: { console: { level: 'info', metrics: false, audit: false } },
        editorTheme: { tours },
      },
      null,
      2,
    )};\n`,
  );
  return settings;
}

module.exports = { prepareUserDir, root };
