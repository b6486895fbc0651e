'use strict';
// `npm start`: Node-RED at http://127.0.0.1:1880 with its own user directory inside the project
// (.node-red/) and this package installed into it; the example flows are under
// Import > Examples > @seedlab/node-red-custom-classifier.
const { spawn } = require('child_process');
const path = require('path');
const { prepareUserDir, root } = require('./node-red-home');

const userDir = path.join(root, '.node-red');
const port = Number(process.env.PORT ?? 1880);
const settings = prepareUserDir(userDir, { port });
const red = require.resolve('node-red/red.js');
// Started in its user directory, as `node-red` usually is: relative paths that nodes take as
// given (the watch node's) resolve there too.
const child = spawn(process.execPath, [red, '--userDir', userDir, '--settings', settings], {
  stdio: 'inherit',
  cwd: userDir,
});
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code) => process.exit(code ?? 0));
