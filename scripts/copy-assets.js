'use strict';
// Node-RED loads each node's editor file and icons from the folder of its compiled .js.
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const nodesSrc = path.join(root, 'nodes');
const nodesOut = path.join(root, 'dist', 'nodes');

function copyInto(dir) {
  const out = path.join(nodesOut, path.relative(nodesSrc, dir));
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const from = path.join(dir, entry.name);
    if (entry.isDirectory()) copyInto(from);
    else if (entry.name.endsWith('.html')) {
      fs.mkdirSync(out, { recursive: true });
      fs.copyFileSync(from, path.join(out, entry.name));
      if (fs.existsSync(path.join(root, 'icons'))) {
        fs.cpSync(path.join(root, 'icons'), path.join(out, 'icons'), { recursive: true });
      }
    }
  }
}

if (fs.existsSync(nodesSrc)) copyInto(nodesSrc);
